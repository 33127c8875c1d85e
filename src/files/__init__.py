"""Files a run reads and writes: text input, staged outputs, checkpoints, the run directory and its lock."""
