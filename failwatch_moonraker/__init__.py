"""failwatch-moonraker: a print-failure detector that acts through Moonraker."""

__version__ = "0.1.0"
