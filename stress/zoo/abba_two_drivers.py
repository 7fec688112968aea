"""ABBA between two drivers.

A sound driver's ioctl takes its card mutex and then calls into the USB
core, which takes the bus mutex; the USB core's disconnect path holds the
bus mutex and calls the sound driver's disconnect, which takes the card
mutex. Each order is fine alone; together they deadlock when both run at
once. lockdep reports the cycle the first time both orders have been seen,
even in a run that did not deadlock: "WARNING: possible circular locking
dependency detected". The fix has disconnect drop the bus mutex before
calling the driver. Found by lockdep.
"""

from percpu_kmem.linux import mutex_init, mutex_lock, mutex_unlock
from percpu_kmem.scenarios import stress

DETECTOR = "lockdep"
REPORTS = ("lockdep_circular", "deadlock")


def _usb_audio(m, drop_bus_lock):
    card_mutex = mutex_init("snd_card_mutex")
    bus_mutex = mutex_init("usb_bus_mutex")
    state = {"urbs": 0, "connected": True}

    def usb_submit_urb():                        # USB core
        mutex_lock(bus_mutex)
        state["urbs"] += 1
        mutex_unlock(bus_mutex)

    def snd_ioctl():                             # sound driver: card, then bus
        mutex_lock(card_mutex)
        if state["connected"]:
            usb_submit_urb()
        mutex_unlock(card_mutex)

    def snd_disconnect():                        # sound driver, called by the USB core
        mutex_lock(card_mutex)
        state["connected"] = False
        mutex_unlock(card_mutex)

    def usb_disconnect():                        # USB core: bus, then (buggy) card
        mutex_lock(bus_mutex)
        state["urbs"] = 0
        if drop_bus_lock:
            mutex_unlock(bus_mutex)
            snd_disconnect()
        else:
            snd_disconnect()
            mutex_unlock(bus_mutex)

    m.run(snd_ioctl, usb_disconnect)


@stress(cpus=2, lockdep=True)
def buggy(m):
    """usb_disconnect() calls the driver with the bus mutex held."""
    _usb_audio(m, False)


@stress(cpus=2, lockdep=True)
def fixed(m):
    """usb_disconnect() drops the bus mutex before calling the driver."""
    _usb_audio(m, True)
