"""The claim, ack and history SQL of each dialect, written out in full: one module each."""
