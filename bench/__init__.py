"""Performance figures for failwatch-moonraker (``make bench``); printed, never asserted."""
