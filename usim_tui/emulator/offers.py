"""The emulator's offer catalogue: machines with GPUs and prices, as `POST /api/v0/bundles/` returns them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

HOURS_PER_MONTH = 30 * 24
# A quiet market's min_bid, as a share of the on-demand GPU price: the median interruptible price over the median
# on-demand one in the one public scrape of both found (docs/vast.md), not the 0.2-0.5 of Vast's "saves 50-80%"
MIN_BID_SHARE = 0.6
GPUS = (  # name, VRAM MB, $/h low, $/h high (per GPU)
    ("RTX 4090", 24564, 0.22, 0.55),
    ("RTX 3090", 24576, 0.12, 0.30),
    ("RTX 5880Ada", 49140, 0.40, 0.80),
    ("A100 SXM4", 81920, 0.80, 1.60),
    ("H100 SXM", 81559, 1.60, 2.80),
)


@dataclass
class Machine:
    machine_id: int
    host_id: int
    gpu_name: str
    gpu_ram: int
    num_gpus: int
    dph_base: float
    storage_cost: float          # $/GB/month
    reliability2: float
    verified: bool
    disk_space: float
    geolocation: str
    offer_id: int = 0            # the current ask id; a new one each time the machine is freed
    rented: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    floor: float = 0.0           # a higher bidder's price after it outbid an instance here...
    floor_until: float = 0.0     # ...until the market falls back (math.inf: not by itself)

    @property
    def min_bid(self) -> float:
        """The lowest bid that rents it interruptible ($/h of the machine) in a quiet market: MIN_BID_SHARE of its
        on-demand price (docs/vast.md, unverified per offer)."""
        return round(self.dph_base * MIN_BID_SHARE, 4)

    def min_bid_at(self, now: float) -> float:
        """The lowest bid that runs it now: after an outbid here, the price that outbid it until the market
        falls back (so re-renting the machine that was just lost costs what it now clears at)."""
        return max(self.min_bid, self.floor) if now < self.floor_until else self.min_bid

    def offer(self, storage_gb: float, now: float = 0.0) -> dict[str, Any]:
        storage_total = self.storage_cost * storage_gb / HOURS_PER_MONTH
        return {
            "id": self.offer_id, "ask_contract_id": self.offer_id, "bundle_id": self.offer_id,
            "machine_id": self.machine_id, "host_id": self.host_id,
            "gpu_name": self.gpu_name, "num_gpus": self.num_gpus, "gpu_ram": self.gpu_ram,
            "gpu_total_ram": self.gpu_ram * self.num_gpus,
            "dph_base": round(self.dph_base, 4), "dph_total": round(self.dph_base + storage_total, 6),
            "storage_cost": self.storage_cost, "storage_total_cost": round(storage_total, 6),
            "inet_up_cost": 0.002, "inet_down_cost": 0.002, "min_bid": self.min_bid_at(now),
            "reliability2": self.reliability2, "reliability": self.reliability2,
            "verification": "verified" if self.verified else "unverified", "verified": self.verified,
            "rentable": not self.rented, "rented": self.rented, "external": False,
            "disk_space": self.disk_space, "geolocation": self.geolocation,
            "cuda_max_good": 12.8, "driver_version": "570.124.06", "cpu_cores": 32, "cpu_cores_effective": 16.0,
            "cpu_ram": 128000, "inet_up": 800.0, "inet_down": 900.0, "direct_port_count": 100,
            "score": round(self.reliability2 * 100 / (self.dph_base + 0.01), 3), "dlperf": 60.0,
            "total_flops": 82.6, "pcie_bw": 25.0, "compute_cap": 890, "start_date": None, "end_date": None,
            "duration": 86400.0 * 30, "is_bid": False, "hosting_type": 0, "static_ip": False,
        }


def as_bid(offer: dict[str, Any]) -> dict[str, Any]:
    """The offer as a `type: bid` search shows it: interruptible pricing in `dph_base`/`dph_total` (its min_bid,
    plus storage), not the on-demand price (vastai 1.9.1 `search offers --type`: "Show 'on-demand', 'reserved',
    or 'bid'(interruptible) pricing"; docs/vast.md). A client that reads a bid search's price as on demand is
    wrong here, as on Vast."""
    return offer | {"is_bid": True, "dph_base": offer["min_bid"],
                    "dph_total": round(offer["min_bid"] + offer["storage_total_cost"], 6)}


def gpu_count(r: float) -> int:
    """GPUs of a machine from one uniform draw: 80% one, 13% two, 5% four, 2% eight (as Vast's listings skew)."""
    return 1 if r < 0.80 else 2 if r < 0.93 else 4 if r < 0.98 else 8


def catalogue(seed: int = 0, per_gpu: int = 120) -> list[Machine]:
    """A seeded catalogue: `per_gpu` machines of each GPU kind; RTX 4090s mostly under $0.45/h per GPU, a
    machine of N GPUs at N times its per-GPU price (Vast's hosts price multi-GPU machines about linearly)."""
    rng = random.Random(seed)
    machines = []
    mid = 10_000
    for name, ram, lo, hi in GPUS:
        for _ in range(per_gpu):
            mid += rng.randint(1, 50)
            n = gpu_count(rng.random())
            machines.append(Machine(
                machine_id=mid, host_id=100 + mid % 997, gpu_name=name, gpu_ram=ram,
                num_gpus=n, dph_base=round(rng.uniform(lo, hi), 3) * n,
                storage_cost=round(rng.uniform(0.1, 0.25), 3),
                reliability2=round(rng.uniform(0.97, 0.9995), 4), verified=rng.random() < 0.9,
                disk_space=float(rng.choice([100, 250, 500, 1000])),
                geolocation=rng.choice(["US", "CA", "DE", "NL", "SE", "JP"])))
    return machines
