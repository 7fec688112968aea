"""Memory subsystems of the simulated machine."""
