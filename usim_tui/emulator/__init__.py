"""A Vast.ai-compatible loopback emulator (aiohttp.web) with fault profiles, and `usim-tui rehearse`."""
import usim_tui.fleet.hosts  # noqa: F401,E402  (asyncssh imported quietly before this package's sshd imports it)
