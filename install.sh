#!/usr/bin/env bash
# Install failwatch-moonraker as a systemd service on a Klipper host.
#
#   ./install.sh [--data ~/printer_data] [--dry-run]
#
# Creates ~/failwatch-moonraker-env, installs the package, writes
# <data>/systemd/failwatch.env, copies the example config to
# <data>/config/failwatch.cfg (never overwriting yours) and installs,
# enables and starts failwatch.service. Re-running it is safe.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA="${HOME}/printer_data"
VENV="${HOME}/failwatch-moonraker-env"
SERVICE="failwatch"
DRY_RUN=0

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

run() {
  if [ "$DRY_RUN" = 1 ]; then echo "would run: $*"; else "$@"; fi
}

if [ "$(id -u)" = 0 ] && [ "${FAILWATCH_ALLOW_ROOT:-0}" != 1 ]; then
  echo "install.sh: run this as the user that runs Klipper and Moonraker, not as root" >&2
  exit 1
fi
if [ ! -d "$DATA" ]; then
  echo "install.sh: $DATA does not exist; pass --data <your printer_data folder>" >&2
  exit 1
fi

echo "failwatch: installing from $REPO for $DATA"
if [ ! -x "$VENV/bin/python" ]; then
  run python3 -m venv "$VENV"
fi
run "$VENV/bin/pip" install --quiet --upgrade pip
run "$VENV/bin/pip" install --quiet "$REPO"

run mkdir -p "$DATA/systemd" "$DATA/config" "$DATA/logs"
ENV_FILE="$DATA/systemd/failwatch.env"
ENV_LINE="FAILWATCH_ARGS=\"--config $DATA/config/failwatch.cfg\""
if [ "$DRY_RUN" = 1 ]; then
  echo "would write $ENV_FILE: $ENV_LINE"
else
  printf '%s\n' "$ENV_LINE" > "$ENV_FILE"
fi

CFG="$DATA/config/failwatch.cfg"
if [ -e "$CFG" ]; then
  echo "failwatch: keeping your $CFG"
else
  run cp "$REPO/config/failwatch.cfg.example" "$CFG"
  echo "failwatch: wrote $CFG; set [predictor] serial_no and access_token in it"
fi

UNIT_TMP="$(mktemp)"
sed -e "s|@USER@|$(id -un)|g" -e "s|@REPO@|$REPO|g" -e "s|@DATA@|$DATA|g" \
    -e "s|@VENV@|$VENV|g" "$REPO/systemd/failwatch.service" > "$UNIT_TMP"
if [ "$DRY_RUN" = 1 ]; then
  echo "would install /etc/systemd/system/$SERVICE.service:"; cat "$UNIT_TMP"
else
  sudo install -m 644 "$UNIT_TMP" "/etc/systemd/system/$SERVICE.service"
  sudo systemctl daemon-reload
  sudo systemctl enable "$SERVICE"
  sudo systemctl restart "$SERVICE"
fi
rm -f "$UNIT_TMP"
echo "failwatch: installed. Check the set-up with:"
echo "  $VENV/bin/failwatch-moonraker check --config $CFG"
