"""``fcd`` sub-commands for data and training (registered by FCDDetectLib.cli)."""
