"""Memory-based settings for PostgreSQL and Redis, from the server type's memory.

Inside localcloud's containers /proc/meminfo shows the whole machine, so the type's
memory from the inventory (``memory_mb``) wins when it is smaller.
"""

from __future__ import annotations


def effective_mb(fact_mb: int, inventory_mb: int | None) -> int:
    candidates = [m for m in (fact_mb, inventory_mb or 0) if m > 0]
    return min(candidates) if candidates else 1024


def postgres_settings(memory_mb: int) -> dict[str, str]:
    """The usual starting points: 25 % shared buffers, 75 % cache, modest work_mem."""
    shared = max(128, memory_mb // 4)
    return {
        "shared_buffers": f"{shared}MB",
        "effective_cache_size": f"{max(256, memory_mb * 3 // 4)}MB",
        "maintenance_work_mem": f"{min(2048, max(64, memory_mb // 16))}MB",
        "work_mem": f"{max(4, memory_mb // 256)}MB",
        "wal_buffers": "16MB",
        "max_connections": "200",
        "random_page_cost": "1.1",  # Hetzner volumes and local disks are SSD
        "effective_io_concurrency": "200",
    }


def redis_maxmemory_mb(memory_mb: int) -> int:
    """60 % of the server: room for the fork that AOF rewrites and snapshots need."""
    return max(64, memory_mb * 6 // 10)
