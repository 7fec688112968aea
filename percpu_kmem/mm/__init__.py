"""Memory subsystems of the simulated machine."""

__all__: list[str] = []  # the kernel API is listed in percpu_kmem.linux
