#!/usr/bin/env bash
# install.sh - install, update or remove failwatch-moonraker next to Moonraker.
#
# Usage:  ./install.sh [OPTIONS]        (as the user that runs Moonraker, not root)
#
# Installs failwatch for one Moonraker instance: the virtualenv
# ~/failwatch-moonraker-env (shared by all instances), the service
# failwatch[-NAME].service, <data>/systemd/failwatch[-NAME].env,
# <data>/config/failwatch.cfg (copied from the example, never overwritten),
# the link <data>/config/failwatch_macros.cfg, the [update_manager] entry in
# <data>/config/failwatch-update.cfg (included from moonraker.conf) and the
# service name in <data>/moonraker.asvc.  Re-run it after an update: it only
# changes what is missing or out of date, then restarts the service.
#
# Options:
#   --instance NAME  the Moonraker instance moonraker-NAME.service / printer_NAME_data;
#                    the service is then failwatch-NAME.  Without it: the only
#                    instance, or a question when there are several (terminal only).
#   --data DIR       the Moonraker data folder to use (e.g. ~/printer_2_data).
#   --local ENGINE   also install a failure model that runs on this host (no server,
#                    no account).  ENGINE:
#                      pinozcam  PiNozCam's detector, the PyPI package pinozcam-runtime
#                                (AGPL-3.0: PiNozCam's, not part of failwatch);
#                      obico     Obico's own detector (the model behind Obico's ML
#                                server; AGPL-3.0 per Obico, ~202 MB, downloaded from
#                                Obico, not part of failwatch) run with onnxruntime:
#                                installs failwatch-moonraker[onnx] and fetches the
#                                model to <data>/failwatch/models/ (sha256 verified).
#                                x86_64 and aarch64 only (no 32-bit ARM wheels).
#                    A new failwatch.cfg then says "backend: pinozcam" (or "onnx");
#                    an existing one is never edited (the installer says what to change).
#   --yes, -y        add [include failwatch_macros.cfg] to printer.cfg (above its
#                    SAVE_CONFIG block) without asking.  Without it: a question on a
#                    terminal, otherwise only the line to add is printed.
#   --uninstall      remove the service and what install.sh added.  Keeps failwatch.cfg,
#                    the statistics and downloaded models (<data>/failwatch/) and the logs.
#   --dry-run        print every change, change nothing.
#   --no-pip         do not run pip: the venv is created without pip and the package
#                    is not installed (for tests; also FAILWATCH_SKIP_PIP=1).  A later
#                    run without it adds pip and installs the package (editable, so
#                    Moonraker's updates of the checkout reach the service).
#   --prefix DIR     root under which etc/systemd/system is read and written
#                    (default /; for tests).
#   --allow-root     allow running as root (also FAILWATCH_ALLOW_ROOT=1).
#   -h, --help       show this help.
#
# Environment: HOME (where printer_data folders and the venv are), SYSTEMCTL
# (default "sudo systemctl", "systemctl" as root), FAILWATCH_PYTHON (default python3).
set -Eeuo pipefail

PROG="install.sh"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEFAULT_ORIGIN="https://github.com/failwatch/failwatch-moonraker.git"
UNIT_TEMPLATE="$REPO/systemd/failwatch.service"
CFG_EXAMPLE="$REPO/config/failwatch.cfg.example"
MACROS_SRC="$REPO/config/failwatch_macros.cfg"
MACROS_INCLUDE="[include failwatch_macros.cfg]"
UPDATE_INCLUDE="[include failwatch-update.cfg]"
# Klipper's marker line; the include goes above it so SAVE_CONFIG keeps it.
SAVE_CONFIG_RE='^#[*]# <-+ SAVE_CONFIG -+>'
# What Moonraker writes into a missing moonraker.asvc (assets/default_allowed_services):
# creating the file with failwatch alone would take these rights away from the others.
MOONRAKER_DEFAULT_ASVC=(klipper_mcu webcamd MoonCord KlipperScreen moonraker-telegram-bot
  moonraker-obico sonar crowsnest octoeverywhere ratos-configurator)

info() { printf 'failwatch: %s\n' "$*"; }
warn() { printf 'failwatch: WARNING: %s\n' "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
usage_error() {
  printf '%s: %s (see ./install.sh --help)\n' "$PROG" "$*" >&2
  exit 2
}
on_error() {
  local rc=$1 line=$2 cmd=$3
  printf '%s: error: command failed with exit status %s (line %s): %s\n' \
    "$PROG" "$rc" "$line" "$cmd" >&2
  exit "$rc"
}
trap 'on_error "$?" "$LINENO" "$BASH_COMMAND"' ERR

TMP_DIR="$(mktemp -d)"
trap 'rm -rf "$TMP_DIR"' EXIT

# ---------------------------------------------------------------- arguments
ACTION="install"
DATA=""
INSTANCE=""
INSTANCE_SET=0
PREFIX="/"
DRY_RUN=0
YES=0
SKIP_PIP=0
LOCAL=""
LOCAL_WHAT=""
LOCAL_BACKEND=""
LOCAL_EXTRA=""
LOCAL_MODEL_FILE=""
ALLOW_ROOT=0
case "${FAILWATCH_SKIP_PIP:-0}" in 1 | true | yes) SKIP_PIP=1 ;; esac
case "${FAILWATCH_ALLOW_ROOT:-0}" in 1 | true | yes) ALLOW_ROOT=1 ;; esac

need_value() { [ "$2" -ge 2 ] || usage_error "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --instance) need_value "$1" $#; INSTANCE="$2"; INSTANCE_SET=1; shift 2 ;;
    --instance=*) INSTANCE="${1#*=}"; INSTANCE_SET=1; shift ;;
    --data) need_value "$1" $#; DATA="$2"; shift 2 ;;
    --data=*) DATA="${1#*=}"; shift ;;
    --local) need_value "$1" $#; LOCAL="$2"; shift 2 ;;
    --local=*) LOCAL="${1#*=}"; shift ;;
    --prefix) need_value "$1" $#; PREFIX="$2"; shift 2 ;;
    --prefix=*) PREFIX="${1#*=}"; shift ;;
    -y | --yes) YES=1; shift ;;
    --uninstall) ACTION="uninstall"; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --no-pip) SKIP_PIP=1; shift ;;
    --allow-root) ALLOW_ROOT=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown option: $1" ;;
  esac
done

if [ "$INSTANCE_SET" = 1 ] && ! [[ "$INSTANCE" =~ ^[A-Za-z0-9_.-]+$ ]]; then
  usage_error "--instance takes a name of letters, digits, '_', '.' or '-', got '$INSTANCE'"
fi
[ -n "$PREFIX" ] || usage_error "--prefix must not be empty"
# Local engines: the name, the pip extra that installs it, what it is.
case "$LOCAL" in
  "") ;;
  pinozcam) LOCAL_WHAT="PiNozCam's failure detector (model and runner: the PyPI package pinozcam-runtime, AGPL-3.0; PiNozCam's, installed from PyPI, not part of failwatch)" ;;
  obico)
    LOCAL_WHAT="Obico's failure detector (AGPL-3.0 per Obico), downloaded from Obico's published URL onto this host; it is not part of failwatch"
    LOCAL_BACKEND="onnx"
    # the name failwatch_moonraker/predictors/local/catalog.py gives Obico's file
    LOCAL_MODEL_FILE="obico-model-weights-5a6b1be1fa.onnx"
    ;;
  *) usage_error "--local takes: pinozcam, obico; got '$LOCAL'" ;;
esac
# The [predictor] backend and the pip extra: the engine's name unless said above.
LOCAL_BACKEND="${LOCAL_BACKEND:-$LOCAL}"
LOCAL_EXTRA="$LOCAL_BACKEND"
[ "$ACTION" = install ] || [ -z "$LOCAL" ] || usage_error "--local goes with an install, not --uninstall"
[ -n "${HOME:-}" ] || die "HOME is not set"
HOME="${HOME%/}"

if [ "$(id -u)" = 0 ] && [ "$ALLOW_ROOT" != 1 ]; then
  die "do not run this as root (or with sudo): run it as the user that runs Moonraker" \
    "(e.g. 'pi'); it calls sudo itself where needed.  (--allow-root overrides this.)"
fi

UNIT_DIR="${PREFIX%/}/etc/systemd/system"
[ -d "$UNIT_DIR" ] || die "no systemd unit folder $UNIT_DIR (is this a systemd host? check --prefix)"
RUN_USER="$(id -un)"
VENV="$HOME/failwatch-moonraker-env"

SYSTEMCTL_CMD=()
if [ -n "${SYSTEMCTL:-}" ]; then
  read -r -a SYSTEMCTL_CMD <<<"$SYSTEMCTL"
fi
if [ "${#SYSTEMCTL_CMD[@]}" -gt 0 ]; then
  :
elif [ "$(id -u)" = 0 ]; then
  SYSTEMCTL_CMD=(systemctl)
else
  SYSTEMCTL_CMD=(sudo systemctl)
fi
# Writing into the unit folder needs sudo unless it is writable (root, or a test prefix).
SUDO=()
if [ ! -w "$UNIT_DIR" ]; then SUDO=(sudo); fi

# ---------------------------------------------------------------- helpers
quote() { printf '%q ' "$@" | sed 's/ $//'; }

# run CMD...: run it (a failure stops the installer, naming the command), or only
# print it with --dry-run.
run() {
  if [ "$DRY_RUN" = 1 ]; then
    info "would run: $(quote "$@")"
    return 0
  fi
  local rc=0
  "$@" || rc=$?
  [ "$rc" = 0 ] || die "'$(quote "$@")' failed (exit status $rc); fix the cause and run" \
    "install.sh again"
}

sctl() { run "${SYSTEMCTL_CMD[@]}" "$@"; }

# sctl_try ARGS...: like sctl, but a failure is only reported (used when removing).
sctl_try() {
  if [ "$DRY_RUN" = 1 ]; then
    sctl "$@"
  elif ! "${SYSTEMCTL_CMD[@]}" "$@"; then
    warn "'$(quote "${SYSTEMCTL_CMD[@]}" "$@")' failed; continuing"
  fi
}

# write_file TARGET MODE [sudo] [SUMMARY]: set TARGET's content to stdin (a file of
# ours).  --dry-run prints the content, or SUMMARY instead when given.
write_file() {
  local target=$1 mode=$2 summary=${4:-} tmp how=""
  local -a pre=()
  if [ "${3:-}" = sudo ] && [ "${#SUDO[@]}" -gt 0 ]; then
    pre=("${SUDO[@]}")
    how=" (with sudo)"
  fi
  tmp="$(mktemp "$TMP_DIR/new.XXXXXX")"
  cat >"$tmp"
  if [ -f "$target" ] && cmp -s "$tmp" "$target"; then
    info "unchanged: $target"
  elif [ "$DRY_RUN" = 1 ] && [ -n "$summary" ]; then
    info "would write $target$how: $summary"
  elif [ "$DRY_RUN" = 1 ]; then
    info "would write $target$how:"
    sed 's/^/    | /' "$tmp"
  else
    run "${pre[@]}" install -m "$mode" "$tmp" "$target"
    info "wrote $target"
  fi
}

# put_file SRC TARGET: write SRC's content into TARGET in place.
put_file() {
  { cat "$1" >"$2"; } 2>/dev/null || die "cannot write $2 (is it yours? $(id -un) runs this)"
}

# edit_file TARGET NEWFILE WHAT: replace a user file's content in place (keeps its
# owner, mode and symlinks), or show the diff with --dry-run.
edit_file() {
  local target=$1 new=$2 what=$3
  if cmp -s "$new" "$target"; then
    return 0
  elif [ "$DRY_RUN" = 1 ]; then
    info "would change $target: $what:"
    diff -u "$target" "$new" | tail -n +3 | sed 's/^/    /' || true
  else
    put_file "$new" "$target"
    info "changed $target: $what"
  fi
}

# The trimmed, space-normalised lines of FILE equal to one of the given strings.
# has_line FILE STRING...: is one of them there?
has_line() {
  [ -f "$1" ] || return 1
  local file=$1
  shift
  awk -v want="$(printf '%s\n' "$@")" '
    BEGIN { n = split(want, w, "\n"); for (i = 1; i <= n; i++) if (w[i] != "") wanted[w[i]] = 1 }
    { l = $0; gsub(/\r$/, "", l); gsub(/^[ \t]+|[ \t]+$/, "", l); gsub(/[ \t]+/, " ", l)
      if (l in wanted) { found = 1; exit } }
    END { exit !found }' "$file"
}

# without_lines FILE STRING...: print FILE without the lines has_line would match.
without_lines() {
  local file=$1
  shift
  awk -v want="$(printf '%s\n' "$@")" '
    BEGIN { n = split(want, w, "\n"); for (i = 1; i <= n; i++) if (w[i] != "") wanted[w[i]] = 1 }
    { l = $0; gsub(/\r$/, "", l); gsub(/^[ \t]+|[ \t]+$/, "", l); gsub(/[ \t]+/, " ", l)
      if (!(l in wanted)) print }' "$file"
}

# remove_lines FILE WHAT STRING...: drop matching lines from a user file.
remove_lines() {
  local file=$1 what=$2 new
  shift 2
  if ! has_line "$file" "$@"; then return 0; fi
  new="$(mktemp "$TMP_DIR/edit.XXXXXX")"
  without_lines "$file" "$@" >"$new"
  edit_file "$file" "$new" "$what"
}

# append_line FILE LINE WHAT: add LINE at the end of a user file (created if absent).
append_line() {
  local file=$1 line=$2 what=$3 new
  new="$(mktemp "$TMP_DIR/edit.XXXXXX")"
  if [ -f "$file" ]; then
    cat "$file" >"$new"
    # Complete a last line that has no newline.
    if [ -s "$new" ] && [ -n "$(tail -c 1 "$new")" ]; then echo >>"$new"; fi
  fi
  printf '%s\n' "$line" >>"$new"
  if [ ! -e "$file" ] && [ "$DRY_RUN" = 1 ]; then
    info "would create $file ($what):"
    sed 's/^/    | /' "$new"
  elif [ ! -e "$file" ]; then
    put_file "$new" "$file"
    info "created $file ($what)"
  else
    edit_file "$file" "$new" "$what"
  fi
}

# sed replacement text for a literal string (delimiter |).
sed_repl() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }

unquote() {
  local v=$1
  v="${v#\"}"; v="${v%\"}"; v="${v#\'}"; v="${v%\'}"
  printf '%s' "$v"
}

# The first "KEY=value" of a systemd unit or env file, unquoted.
read_key() {
  local file=$1 key=$2 v
  v="$(sed -n "s/^[[:space:]]*${key}[[:space:]]*=[[:space:]]*//p" "$file" | head -n 1)"
  v="${v%"${v##*[![:space:]]}"}"
  unquote "$v"
}

# ---------------------------------------------------------------- instances
# Found Moonraker instances: name ("" = the default one), data folder, Moonraker unit.
INST_NAMES=()
INST_DATA=()
INST_MR=()

add_instance() {
  local i
  for i in "${!INST_DATA[@]}"; do
    [ "${INST_DATA[$i]}" = "$2" ] && return 0
  done
  INST_NAMES+=("$1")
  INST_DATA+=("$2")
  INST_MR+=("$3")
}

# The data folder of a Moonraker env file: MOONRAKER_DATA_PATH, else "-d DIR" in
# MOONRAKER_ARGS, else the folder above systemd/.
data_of_env_file() {
  local env=$1 v="" args
  if [ -r "$env" ]; then
    v="$(read_key "$env" MOONRAKER_DATA_PATH)"
    if [ -z "$v" ]; then
      args=" $(read_key "$env" MOONRAKER_ARGS) "
      if [[ "$args" =~ [[:space:]](-d|--datapath)[[:space:]]+([^[:space:]]+) ]]; then
        v="${BASH_REMATCH[2]}"
      fi
    fi
  fi
  if [ -z "$v" ] && [[ "$env" =~ ^(.+)/systemd/[^/]+\.env$ ]]; then
    v="${BASH_REMATCH[1]}"
  fi
  printf '%s' "${v%/}"
}

# 1. EnvironmentFile= of every moonraker[-NAME].service; 2. else ~/*_data folders.
discover_instances() {
  local unit base suffix env data dir name
  for unit in "$UNIT_DIR"/moonraker.service "$UNIT_DIR"/moonraker-*.service; do
    [ -f "$unit" ] || continue
    base="$(basename "$unit" .service)"
    env="$(read_key "$unit" EnvironmentFile)"
    env="${env#-}"
    env="${env//%h/$HOME}"
    [ -n "$env" ] || continue
    # Companions named moonraker-* (telegram bot, obico) have other env files.
    if [ "$(basename "$env")" != moonraker.env ] && ! grep -q 'MOONRAKER_ARGS' "$unit"; then
      continue
    fi
    data="$(data_of_env_file "$env")"
    [ -n "$data" ] || continue
    suffix="${base#moonraker}"
    add_instance "${suffix#-}" "$data" "$base.service"
  done
  [ "${#INST_DATA[@]}" -eq 0 ] || return 0
  for dir in "$HOME"/*_data; do
    [ -d "$dir/config" ] || continue
    name="$(basename "$dir")"
    [[ "$name" =~ ^[A-Za-z0-9_]+_data$ ]] || continue
    name="$(instance_of_folder "$name")"
    add_instance "$name" "$dir" "moonraker${name:+-$name}.service"
  done
}

# printer_data -> "", printer_NAME_data -> NAME, other_data -> other
instance_of_folder() {
  local n=$1
  case "$n" in
    printer_data) printf '' ;;
    printer_*_data) n="${n#printer_}"; printf '%s' "${n%_data}" ;;
    *_data) printf '%s' "${n%_data}" ;;
    *) printf '' ;;
  esac
}

list_instances() {
  local i
  for i in "${!INST_DATA[@]}"; do
    if [ -n "${INST_NAMES[$i]}" ]; then
      printf '  %d) --instance %-10s %s  (%s -> failwatch-%s)\n' "$((i + 1))" \
        "${INST_NAMES[$i]}" "${INST_DATA[$i]}" "${INST_MR[$i]}" "${INST_NAMES[$i]}"
    else
      printf '  %d) --data %-14s (%s -> failwatch)\n' "$((i + 1))" "${INST_DATA[$i]}" \
        "${INST_MR[$i]}"
    fi
  done
}

# Sets DATA, NAME and MR_SERVICE.
select_instance() {
  local i pick=""
  discover_instances
  NAME=""
  MR_SERVICE=""
  if [ -n "$DATA" ]; then
    case "$DATA" in /*) ;; *) DATA="$PWD/$DATA" ;; esac
    DATA="${DATA%/}"
    for i in "${!INST_DATA[@]}"; do
      if [ "${INST_DATA[$i]}" = "$DATA" ]; then pick=$i; fi
    done
    if [ "$INSTANCE_SET" = 1 ]; then
      NAME="$INSTANCE"
    elif [ -n "$pick" ]; then
      NAME="${INST_NAMES[$pick]}"
    else
      NAME="$(instance_of_folder "$(basename "$DATA")")"
      case "$(basename "$DATA")" in printer_data | printer_*_data) ;; *) NAME="" ;; esac
    fi
    if [ -n "$pick" ]; then MR_SERVICE="${INST_MR[$pick]}"; fi
  elif [ "$INSTANCE_SET" = 1 ]; then
    for i in "${!INST_DATA[@]}"; do
      if [ "${INST_NAMES[$i]}" = "$INSTANCE" ] ||
        [ "$(basename "${INST_DATA[$i]}")" = "printer_${INSTANCE}_data" ]; then
        pick=$i
      fi
    done
    if [ -z "$pick" ]; then
      if [ "${#INST_DATA[@]}" -eq 0 ]; then
        die "no Moonraker instance '$INSTANCE' (found none: no moonraker-*.service in" \
          "$UNIT_DIR and no ~/*_data folder); pass --data DIR"
      fi
      die "no Moonraker instance '$INSTANCE' (no moonraker-$INSTANCE.service and no" \
        "printer_${INSTANCE}_data). Found:"$'\n'"$(list_instances)"
    fi
    DATA="${INST_DATA[$pick]}"
    NAME="$INSTANCE"
    MR_SERVICE="${INST_MR[$pick]}"
  else
    case "${#INST_DATA[@]}" in
      0)
        die "found no Moonraker data folder (no moonraker*.service with an" \
          "EnvironmentFile= in $UNIT_DIR, no $HOME/*_data/config); pass --data DIR"
        ;;
      1) pick=0 ;;
      *)
        if [ -t 0 ]; then
          info "several Moonraker instances:"
          list_instances
          local answer=""
          read -r -p "failwatch: which one? [1-${#INST_DATA[@]}] " answer || true
          if [[ "$answer" =~ ^[0-9]+$ ]] && [ "$answer" -ge 1 ] &&
            [ "$answer" -le "${#INST_DATA[@]}" ]; then
            pick=$((answer - 1))
          else
            die "no instance chosen"
          fi
        else
          die "several Moonraker instances; choose one with --instance NAME or --data DIR:" \
            $'\n'"$(list_instances)"
        fi
        ;;
    esac
    DATA="${INST_DATA[$pick]}"
    NAME="${INST_NAMES[$pick]}"
    MR_SERVICE="${INST_MR[$pick]}"
  fi
  if [ -n "$NAME" ] && ! [[ "$NAME" =~ ^[A-Za-z0-9_.-]+$ ]]; then
    die "cannot derive a service name from '$NAME'; pass --instance NAME"
  fi
  [ -n "$MR_SERVICE" ] || MR_SERVICE="moonraker${NAME:+-$NAME}.service"
}

select_instance
SERVICE="failwatch${NAME:+-$NAME}"
UNIT_FILE="$UNIT_DIR/$SERVICE.service"
CFG_DIR="$DATA/config"
ENV_FILE="$DATA/systemd/$SERVICE.env"
CFG="$CFG_DIR/failwatch.cfg"
MACROS_LINK="$CFG_DIR/failwatch_macros.cfg"
UPDATE_CFG="$CFG_DIR/failwatch-update.cfg"
MOONRAKER_CONF="$CFG_DIR/moonraker.conf"
PRINTER_CFG="$CFG_DIR/printer.cfg"
ASVC="$DATA/moonraker.asvc"
MR_NAME="${MR_SERVICE%.service}"
if [ "${#SYSTEMCTL_CMD[@]}" -gt 0 ] && [ "${SYSTEMCTL_CMD[0]}" = sudo ]; then
  SUDO_HINT="sudo systemctl"
else
  SUDO_HINT="systemctl"
fi

# ---------------------------------------------------------------- install
check_install_preconditions() {
  [ -d "$DATA" ] || die "the data folder $DATA does not exist; pass --data with your" \
    "Moonraker data folder (the one holding config/ and moonraker.asvc)"
  [ -d "$CFG_DIR" ] || die "$DATA has no config/ folder: it is not a Moonraker data folder"
  [ -f "$UNIT_TEMPLATE" ] || die "missing $UNIT_TEMPLATE (incomplete checkout?)"
  [ -f "$CFG_EXAMPLE" ] || die "missing $CFG_EXAMPLE (incomplete checkout?)"
  local p
  for p in "$REPO" "$DATA" "$VENV"; do
    if [[ "$p" =~ [[:space:]] ]]; then
      die "the path '$p' contains white space, which systemd's \$FAILWATCH_ARGS cannot carry"
    fi
  done
  if [ "$DRY_RUN" = 0 ] && ! command -v "${SYSTEMCTL_CMD[0]}" >/dev/null; then
    die "'${SYSTEMCTL_CMD[0]}' not found (SYSTEMCTL=${SYSTEMCTL_CMD[*]}); this needs systemd"
  fi
  if [ -f "$UNIT_FILE" ]; then
    local other
    other="$(read_key "$UNIT_FILE" EnvironmentFile)"
    other="${other#-}"
    if [ -n "$other" ] && [ "$other" != "$ENV_FILE" ]; then
      die "$UNIT_FILE already serves another data folder ($other); install this one with" \
        "--instance NAME, or remove that one first with --uninstall"
    fi
  fi
}

venv_python_ok() {
  [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null
}

# With --no-pip the venv is created without pip (no network, ~0.1 s) and nothing is
# installed; a later run without --no-pip bootstraps pip with ensurepip.
setup_venv() {
  local py="${FAILWATCH_PYTHON:-python3}"
  if venv_python_ok; then
    info "using the virtualenv $VENV"
  else
    command -v "$py" >/dev/null ||
      die "$py not found; install Python 3.10 or newer: sudo apt-get install python3 python3-venv"
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
      die "failwatch needs Python 3.10 or newer; $py is $("$py" -V 2>&1)"
    if [ -e "$VENV" ]; then
      [ -f "$VENV/pyvenv.cfg" ] || die "$VENV exists but is not a Python virtualenv; move it away"
      warn "$VENV is broken or too old; creating it again"
      run rm -rf "$VENV"
    fi
    if [ "$SKIP_PIP" = 1 ]; then
      run "$py" -m venv --without-pip "$VENV"
    else
      "$py" -c 'import ensurepip' 2>/dev/null ||
        die "Python's venv support is missing; install it: sudo apt-get install python3-venv"
      run "$py" -m venv "$VENV"
    fi
  fi
  if [ "$SKIP_PIP" = 1 ]; then
    info "skipping pip (--no-pip / FAILWATCH_SKIP_PIP=1): failwatch is not installed into $VENV"
    [ -z "$LOCAL" ] || info "skipping pip: the $LOCAL engine is not installed either"
    return 0
  fi
  if [ ! -x "$VENV/bin/pip" ]; then run "$VENV/bin/python" -m ensurepip --upgrade; fi
  run "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # Editable: Moonraker's update manager pulls the repo and only re-runs
  # requirements.txt, so the venv must run the code in the repo.
  if [ -n "$LOCAL" ]; then
    info "installing $LOCAL_WHAT"
    run "$VENV/bin/python" -m pip install --quiet --editable "$REPO[$LOCAL_EXTRA]"
    [ "$DRY_RUN" = 1 ] || info "installed failwatch-moonraker[$LOCAL_EXTRA] from $REPO into $VENV"
  else
    run "$VENV/bin/python" -m pip install --quiet --editable "$REPO"
    [ "$DRY_RUN" = 1 ] || info "installed failwatch-moonraker from $REPO into $VENV"
  fi
}

write_env_file() {
  if [ ! -d "$DATA/systemd" ]; then run mkdir -p "$DATA/systemd"; fi
  write_file "$ENV_FILE" 644 <<EOF
# failwatch-moonraker service arguments; install.sh writes this file.
FAILWATCH_ARGS="--config $CFG"
EOF
}

moonraker_port() {
  [ -f "$MOONRAKER_CONF" ] || return 0
  awk '
    /^[ \t]*\[/ { s = $0; gsub(/^[ \t]*\[|\][ \t]*$/, "", s); next }
    s == "server" && /^[ \t]*port[ \t]*[:=]/ {
      v = $0; sub(/^[^:=]*[:=][ \t]*/, "", v); sub(/[ \t#;].*$/, "", v); print v; exit }' \
    "$MOONRAKER_CONF"
}

# failwatch.cfg: the example, never over the user's file.  For another data folder
# than ~/printer_data (or another port than 7125) the default paths and URL are
# made explicit so the instance uses its own socket, statistics and logs.
install_config() {
  if [ -e "$CFG" ]; then
    info "keeping your $CFG"
    if [ -n "$(find "$CFG" -maxdepth 0 -perm /044 2>/dev/null)" ]; then
      info "it holds your tokens and other users can read it: chmod 600 $CFG"
    fi
    if [ -n "$LOCAL" ]; then
      if grep -Eq "^[[:space:]]*backend[[:space:]]*[:=][[:space:]]*$LOCAL_BACKEND[[:space:]]*$" "$CFG"; then
        info "it already uses backend $LOCAL_BACKEND"
      else
        info "it is not changed: to use $LOCAL, set this in its [predictor] section:"
        info "  backend: $LOCAL_BACKEND"
        if [ -n "$LOCAL_MODEL_FILE" ] && [ "$DATA" != "$HOME/printer_data" ]; then
          info "  model: $DATA/failwatch/models/$LOCAL_MODEL_FILE"
        fi
        info "(serial_no and access_token are then not needed), and restart $SERVICE"
      fi
    fi
    return 0
  fi
  local port sedargs=()
  port="$(moonraker_port)"
  if [ "$DATA" != "$HOME/printer_data" ]; then
    sedargs+=(-e "s|^#([A-Za-z_]+): ~/printer_data/|\\1: $(sed_repl "$DATA")/|")
  fi
  if [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" != 7125 ]; then
    sedargs+=(-e "s|^#url: ws://127\\.0\\.0\\.1:7125/websocket|url: ws://127.0.0.1:$port/websocket|")
  fi
  if [ -n "$LOCAL" ]; then
    # The model on this host: no credentials to fill in.
    sedargs+=(-e "s|^#backend: obico\$|backend: $LOCAL_BACKEND|"
      -e "s|^(serial_no: YOUR-PRINTER-SERIAL)\$|#serial_no:|"
      -e "s|^(access_token: YOUR-ACCESS-TOKEN)\$|#access_token:|")
  fi
  # Mode 0600: it will hold the predictor's tokens (Moonraker runs as the same user).
  if [ "${#sedargs[@]}" -eq 0 ]; then
    write_file "$CFG" 600 "" "a copy of $CFG_EXAMPLE (mode 0600)" <"$CFG_EXAMPLE"
  else
    sed -E "${sedargs[@]}" "$CFG_EXAMPLE" |
      write_file "$CFG" 600 "" \
        "a copy of $CFG_EXAMPLE, with this instance's settings (mode 0600)"
  fi
  [ "$DRY_RUN" = 1 ] || info "$CFG is readable by $(id -un) only (mode 0600): it holds your tokens"
  if [ -n "$LOCAL" ]; then
    info "$CFG uses backend $LOCAL_BACKEND: the model runs on this host, no credentials needed"
  else
    info "put your predictor credentials ([predictor] serial_no, access_token) into $CFG"
  fi
}

# --local obico: the model file, downloaded from its publisher and verified (model fetch).
install_local_model() {
  [ -n "$LOCAL_MODEL_FILE" ] || return 0
  local model="$DATA/failwatch/models/$LOCAL_MODEL_FILE"
  info "--local $LOCAL: the model is $LOCAL_WHAT"
  if [ "$SKIP_PIP" = 1 ]; then
    info "skipping onnxruntime and the model (--no-pip); later: re-run without --no-pip, or" \
      "$VENV/bin/failwatch-moonraker model fetch $LOCAL --dest $model"
    return 0
  fi
  if ! run "$VENV/bin/failwatch-moonraker" model fetch "$LOCAL" --dest "$model"; then
    die "failwatch is installed, but the model is not (see above); try again with" \
      "$VENV/bin/failwatch-moonraker model fetch $LOCAL --dest $model"
  fi
}

# onnxruntime publishes wheels for x86_64 and aarch64 only.
check_local_platform() {
  [ "$LOCAL_EXTRA" = onnx ] || return 0
  case "$(uname -m)" in
    armv6l | armv7l | armhf | i386 | i686)
      die "--local $LOCAL needs onnxruntime, which has no wheels for this $(uname -m) system" \
        "(32-bit).  Ways out: a 64-bit OS (Raspberry Pi OS 64-bit), Debian's python3-onnxruntime" \
        "(trixie) in a venv made with --system-site-packages, --local pinozcam, or a remote" \
        "backend (obico_ml_api on another machine)"
      ;;
  esac
}

# Asks on a terminal, or takes --yes.
printer_cfg_consent() {
  [ "$YES" = 1 ] && return 0
  [ -t 0 ] || return 1
  local answer=""
  read -r -p "failwatch: add '$MACROS_INCLUDE' to $PRINTER_CFG? [y/N] " answer || true
  [[ "$answer" =~ ^[Yy] ]]
}

install_macros() {
  if [ ! -f "$MACROS_SRC" ]; then
    warn "missing $MACROS_SRC; skipping the macros"
    return 0
  fi
  if [ -L "$MACROS_LINK" ] && [ "$(readlink "$MACROS_LINK")" = "$MACROS_SRC" ]; then
    info "unchanged: $MACROS_LINK -> $MACROS_SRC"
  elif [ -e "$MACROS_LINK" ] && [ ! -L "$MACROS_LINK" ]; then
    warn "$MACROS_LINK is a file of yours, not install.sh's link; leaving it (delete it and" \
      "re-run to get the macros that follow updates)"
  else
    run ln -sfn "$MACROS_SRC" "$MACROS_LINK"
    [ "$DRY_RUN" = 1 ] || info "linked $MACROS_LINK -> $MACROS_SRC"
  fi

  if [ ! -f "$PRINTER_CFG" ]; then
    info "no $PRINTER_CFG; add this line to your printer.cfg: $MACROS_INCLUDE"
    return 0
  fi
  if has_line "$PRINTER_CFG" "$MACROS_INCLUDE"; then
    info "unchanged: $PRINTER_CFG already has $MACROS_INCLUDE"
    return 0
  fi
  if has_line "$PRINTER_CFG" "#$MACROS_INCLUDE" "# $MACROS_INCLUDE"; then
    info "$PRINTER_CFG has $MACROS_INCLUDE commented out; leaving it so"
    return 0
  fi
  if ! printer_cfg_consent; then
    info "to get the FAILWATCH_* macros, add this line to $PRINTER_CFG (above any" \
      "SAVE_CONFIG block), or re-run with --yes:"
    info "    $MACROS_INCLUDE"
    return 0
  fi
  local new
  new="$(mktemp "$TMP_DIR/edit.XXXXXX")"
  awk -v inc="$MACROS_INCLUDE" -v re="$SAVE_CONFIG_RE" '
    !done && $0 ~ re { print inc; done = 1 }
    { print }
    END { if (!done) print inc }' "$PRINTER_CFG" >"$new"
  edit_file "$PRINTER_CFG" "$new" "add $MACROS_INCLUDE"
  PRINTER_CFG_CHANGED=1
}

repo_origin() {
  local url=""
  if command -v git >/dev/null; then
    url="$(git -C "$REPO" remote get-url origin 2>/dev/null || true)"
  fi
  printf '%s' "${url:-$DEFAULT_ORIGIN}"
}

install_update_manager() {
  local section="[update_manager $SERVICE]"
  if [ -f "$MOONRAKER_CONF" ] && has_line "$MOONRAKER_CONF" "$section"; then
    warn "$MOONRAKER_CONF has its own $section; not adding $UPDATE_CFG"
    return 0
  fi
  write_file "$UPDATE_CFG" 644 <<EOF
# Moonraker update manager entry for $SERVICE; install.sh writes this file and
# includes it from moonraker.conf.
$section
type: git_repo
path: $REPO
origin: $(repo_origin)
primary_branch: main
virtualenv: $VENV
requirements: requirements.txt
managed_services: $SERVICE
EOF
  if [ ! -f "$MOONRAKER_CONF" ]; then
    warn "no $MOONRAKER_CONF; add '$UPDATE_INCLUDE' to your moonraker.conf for updates"
  elif has_line "$MOONRAKER_CONF" "$UPDATE_INCLUDE"; then
    info "unchanged: $MOONRAKER_CONF already has $UPDATE_INCLUDE"
  else
    append_line "$MOONRAKER_CONF" "$UPDATE_INCLUDE" "add $UPDATE_INCLUDE"
    MOONRAKER_CHANGED=1
  fi

  if has_line "$ASVC" "$SERVICE" "$SERVICE.service"; then
    info "unchanged: $ASVC already allows $SERVICE"
  elif [ -e "$ASVC" ]; then
    append_line "$ASVC" "$SERVICE" "allow Moonraker to manage $SERVICE"
    MOONRAKER_CHANGED=1
  else
    append_line "$ASVC" "$(printf '%s\n' "${MOONRAKER_DEFAULT_ASVC[@]}" "$SERVICE")" \
      "Moonraker's default list plus $SERVICE"
    MOONRAKER_CHANGED=1
  fi
}

render_unit() {
  sed -e '/^#%/d' \
    -e "s|@USER@|$(sed_repl "$RUN_USER")|g" \
    -e "s|@REPO@|$(sed_repl "$REPO")|g" \
    -e "s|@DATA@|$(sed_repl "$DATA")|g" \
    -e "s|@VENV@|$(sed_repl "$VENV")|g" \
    -e "s|@ENV_FILE@|$(sed_repl "$ENV_FILE")|g" \
    -e "s|@SERVICE@|$(sed_repl "$SERVICE")|g" \
    -e "s|@MOONRAKER_SERVICE@|$(sed_repl "$MR_SERVICE")|g" \
    "$UNIT_TEMPLATE"
}

install_unit() {
  local unit
  unit="$(mktemp "$TMP_DIR/unit.XXXXXX")"
  render_unit >"$unit"
  if grep -q '@[A-Z_]*@' "$unit"; then
    die "$UNIT_TEMPLATE has a placeholder install.sh does not know:" \
      "$(grep -o '@[A-Z_]*@' "$unit" | sort -u | tr '\n' ' ')"
  fi
  write_file "$UNIT_FILE" 644 sudo <"$unit"
  sctl daemon-reload
  sctl enable "$SERVICE.service"
  sctl restart "$SERVICE.service"
}

do_install() {
  PRINTER_CFG_CHANGED=0
  MOONRAKER_CHANGED=0
  check_install_preconditions
  check_local_platform
  [ "$DRY_RUN" = 0 ] || info "dry run: nothing is changed"
  info "installing $SERVICE for $DATA (Moonraker: $MR_SERVICE) from $REPO"
  setup_venv
  write_env_file
  install_config
  install_local_model
  install_macros
  install_update_manager
  install_unit
  if [ "$DRY_RUN" = 1 ]; then
    if [ "$MOONRAKER_CHANGED" = 1 ]; then
      info "would then ask you to restart Moonraker for the update manager entry:" \
        "$SUDO_HINT restart $MR_NAME"
    fi
    if [ "$PRINTER_CFG_CHANGED" = 1 ]; then
      info "would then ask you to restart Klipper (RESTART in the console) for the macros"
    fi
    info "dry run: nothing was changed"
    return 0
  fi
  info "done: $SERVICE is installed and (re)started.  Next:"
  if [ -n "$LOCAL" ]; then
    info "  1. see what the model makes of your camera's pictures:"
    info "     $VENV/bin/failwatch-moonraker detect --config $CFG PICTURE.jpg..."
    info "     ($LOCAL_WHAT)"
  else
    info "  1. put your predictor credentials in $CFG, then"
    info "     $SUDO_HINT restart $SERVICE"
  fi
  if [ "$SKIP_PIP" = 1 ]; then
    info "  2. (--no-pip: failwatch was not installed into $VENV; re-run without it)"
  else
    info "  2. check every part once: $VENV/bin/failwatch-moonraker check --config $CFG"
  fi
  if [ "$MOONRAKER_CHANGED" = 1 ]; then
    info "  3. restart Moonraker for the update manager entry: $SUDO_HINT restart $MR_NAME"
  fi
  if [ "$PRINTER_CFG_CHANGED" = 1 ]; then
    info "  4. restart Klipper (RESTART in the console) to load the FAILWATCH_* macros"
  fi
  info "  logs: $DATA/logs/failwatch.log and journalctl -u $SERVICE"
}

# ---------------------------------------------------------------- uninstall
other_units_using_venv() {
  local unit
  for unit in "$UNIT_DIR"/failwatch.service "$UNIT_DIR"/failwatch-*.service; do
    if [ ! -f "$unit" ] || [ "$unit" = "$UNIT_FILE" ]; then continue; fi
    if grep -qF "$VENV/bin/" "$unit"; then basename "$unit" .service; fi
  done
}

do_uninstall() {
  [ "$DRY_RUN" = 0 ] || info "dry run: nothing is changed"
  info "removing $SERVICE (data folder $DATA)"
  if [ -f "$UNIT_FILE" ]; then
    sctl_try stop "$SERVICE.service"
    sctl_try disable "$SERVICE.service"
    run "${SUDO[@]}" rm -f "$UNIT_FILE"
    [ "$DRY_RUN" = 1 ] || info "removed $UNIT_FILE"
    sctl_try daemon-reload
    sctl_try reset-failed "$SERVICE.service"
  else
    info "no $UNIT_FILE"
  fi

  local f
  for f in "$ENV_FILE" "$UPDATE_CFG"; do
    if [ -e "$f" ]; then
      run rm -f "$f"
      [ "$DRY_RUN" = 1 ] || info "removed $f"
    fi
  done
  remove_lines "$MOONRAKER_CONF" "remove $UPDATE_INCLUDE" "$UPDATE_INCLUDE"
  remove_lines "$ASVC" "remove $SERVICE" "$SERVICE" "$SERVICE.service"
  remove_lines "$PRINTER_CFG" "remove $MACROS_INCLUDE" "$MACROS_INCLUDE"
  if [ -L "$MACROS_LINK" ]; then
    run rm -f "$MACROS_LINK"
    [ "$DRY_RUN" = 1 ] || info "removed the link $MACROS_LINK"
  elif [ -e "$MACROS_LINK" ]; then
    info "keeping $MACROS_LINK: it is your own file, not install.sh's link"
  fi

  local others
  others="$(other_units_using_venv | tr '\n' ' ')"
  if [ -n "$others" ]; then
    info "keeping $VENV: still used by ${others% }"
  elif [ -f "$VENV/pyvenv.cfg" ]; then
    run rm -rf "$VENV"
    [ "$DRY_RUN" = 1 ] || info "removed $VENV"
  elif [ -e "$VENV" ]; then
    info "keeping $VENV: it is not a Python virtualenv"
  fi

  [ "$DRY_RUN" = 0 ] || { info "dry run: nothing was changed"; return 0; }
  info "done.  Kept: your $CFG, the statistics in $DATA/failwatch/ and the logs in" \
    "$DATA/logs/; delete them yourself if you want them gone."
  info "Restart Moonraker ($SUDO_HINT restart $MR_NAME) and Klipper (RESTART) to drop" \
    "the update entry and the macros."
}

if [ "$ACTION" = uninstall ]; then
  do_uninstall
else
  do_install
fi
