"""The printer side: the Moonraker agent, the actions on the printer and the macro commands."""
