"""Asset values as JSON in the bucket, so both backends (and every run container) share them."""

from typing import Any

import dagster as dg
import orjson

from . import BucketResource


class BucketJSONIOManager(dg.ConfigurableIOManager):
    """``assets/<asset key>/<partition>.json``; readable by people and by the leaderboard."""

    bucket: dg.ResourceDependency[BucketResource]

    @staticmethod
    def _key(asset_key: dg.AssetKey, partition: str | None) -> str:
        return f"assets/{'/'.join(asset_key.path)}/{partition or '_'}.json"

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        partition = context.asset_partition_key if context.has_asset_partitions else None
        data = orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
        self.bucket.client().put_bytes(self._key(context.asset_key, partition), data)

    def load_input(self, context: dg.InputContext) -> Any:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        return orjson.loads(self.bucket.client().get_bytes(self._key(context.asset_key, partition)))


class TraceIOManager(dg.ConfigurableIOManager):
    """Traces and their answers as JSON Lines under ``official/`` (organisers only: the leaderboard
    never serves that prefix). An input spanning several phases loads as ``{phase: lines}``."""

    bucket: dg.ResourceDependency[BucketResource]

    @staticmethod
    def _key(asset_key: dg.AssetKey, phase: str) -> str:
        return f"official/{'/'.join(asset_key.path)}/{phase}.jsonl"

    def handle_output(self, context: dg.OutputContext, obj: list[bytes]) -> None:
        data = b"".join(line + b"\n" for line in obj)
        self.bucket.client().put_bytes(self._key(context.asset_key, context.asset_partition_key), data)

    def load_input(self, context: dg.InputContext) -> list[bytes] | dict[str, list[bytes]]:
        client = self.bucket.client()
        phases = context.asset_partition_keys
        loaded = {p: client.get_bytes(self._key(context.asset_key, p)).splitlines() for p in phases}
        return loaded if len(phases) > 1 else loaded[phases[0]]
