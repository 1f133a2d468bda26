"""A Vast.ai-compatible loopback emulator (aiohttp.web) with fault profiles, and `usim-tui rehearse`."""
