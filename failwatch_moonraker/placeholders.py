"""The example config's placeholder credentials, told apart from real ones.

``config/failwatch.cfg.example`` (copied by install.sh) holds
``serial_no: YOUR-PRINTER-SERIAL`` and ``access_token: YOUR-ACCESS-TOKEN``, which
are valid strings: without this check the service starts, every snapshot is
refused, and the user reads "refused the credentials" with no hint of why.
``check`` fails on them and the daemon logs them at start, saying what goes there.
"""

from __future__ import annotations

from typing import Any

#: option -> the example's placeholder value
PLACEHOLDERS = {"serial_no": "YOUR-PRINTER-SERIAL", "access_token": "YOUR-ACCESS-TOKEN"}

_WHAT = {
    "serial_no": "the serial number your printer is registered with at Obico's partner API "
                 "(Obico/Elegoo partner devices)",
    "access_token": "the access token issued with that serial number",
}
_ML_API_TOKEN = ("the Obico ML server's ML_API_TOKEN, or remove the line if the server has "
                 "none")
_OTHERS = ("Without a partner device: a model on this host (backend: pinozcam or onnx, "
           "install.sh --local), your own "
           "Obico server (backend: obico_ml_api) or PrintWatch (backend: printwatch); see "
           "the README, \"Which predictor?\".")


def is_placeholder(option: str, value: str) -> bool:
    placeholder = PLACEHOLDERS.get(option)
    return bool(placeholder) and value.strip().upper() == placeholder


def placeholder_problems(config: Any) -> list[str]:
    """One message per printer whose credentials are still the example's placeholders.

    The token's own value is never quoted (it is a secret, and would be scrubbed).
    """
    problems: list[str] = []
    for one in (config.printers or (config,)):
        predictor = one.predictor
        if predictor.backend == "obico":
            options = [o for o in ("serial_no", "access_token")
                       if is_placeholder(o, getattr(predictor, o, ""))]
        elif predictor.backend == "obico_ml_api":
            options = ["access_token"] if is_placeholder(
                "access_token", predictor.access_token) else []
        else:
            options = []
        if not options:
            continue
        where = f"[printer {one.name}] predictor_" if one.name else "[predictor] "
        names = " and ".join(f"{where}{o}" for o in options)
        verb = "are" if len(options) > 1 else "is"
        wanted = "; ".join(
            f"{o}: {_ML_API_TOKEN if predictor.backend == 'obico_ml_api' else _WHAT[o]}"
            for o in options)
        tail = f" {_OTHERS}" if predictor.backend == "obico" else ""
        problems.append(
            f"{names} {verb} still the placeholder{'s' if len(options) > 1 else ''} of the "
            f"example config, so the predictor refuses every snapshot. Put there {wanted}; "
            f"then restart failwatch.{tail}")
    return problems
