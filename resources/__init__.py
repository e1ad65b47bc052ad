"""Dagster resources: thin configuration over the I/O adapters (no rules here)."""

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field, PrivateAttr

from quantcraft_dagster import settings
from quantcraft_dagster.core import protocol, trace
from quantcraft_dagster.core.scoring import RankingConfig, ScoringConfig, preset
from quantcraft_dagster.core.trial import ValidityConfig
from quantcraft_dagster.judge.config import JudgeConfig
from quantcraft_dagster.judge.cpus import split_cpus
from quantcraft_dagster.judge.judging import docker_sandbox
from quantcraft_dagster.judge.sandbox import BubblewrapSandbox, Sandbox
from quantcraft_dagster.judge.slots import Slot, host_of, host_slots, slot_key, take_slot
from quantcraft_dagster.settings import ENV, Settings
from quantcraft_dagster.storage.bucket import Bucket, connect


class BucketResource(dg.ConfigurableResource):
    """Uploads, traces, telemetry and asset values; a folder (default) or S3/MinIO, same keys."""

    backend: str = "local"
    root: str = ""  # the local backend's folder; empty: the settings' bucket root
    bucket: str = "quantcraft"
    endpoint_url: str = ""
    region: str = "us-east-1"
    # Set these two with dg.EnvVar (``from_settings`` does): Dagster resolves them at run time and
    # never shows them; a plain value would be stored and displayed with the resource's config.
    access_key: str = ""
    secret_key: str = ""

    @classmethod
    def from_settings(cls, s: Settings) -> "BucketResource":
        """The code location's bucket; the S3 keys stay names of variables, not their values."""
        if s.bucket_backend != "s3":
            return cls(backend=s.bucket_backend, root=str(s.bucket_root))
        return cls(
            backend="s3",
            bucket=s.s3_bucket,
            endpoint_url=s.s3_endpoint,
            region=s.s3_region,
            access_key=dg.EnvVar(ENV["s3_access_key"]),
            secret_key=dg.EnvVar(ENV["s3_secret_key"]),
        )

    def client(self) -> Bucket:
        root = self.root or str(settings.current().bucket_root)
        return connect(
            self.backend, root, self.bucket, self.endpoint_url, self.region, self.access_key, self.secret_key
        )


class SandboxResource(dg.ConfigurableResource):
    """Sandbox backend and limits (docs/protocol.md section 1) and the CPU split of this host."""

    # bubblewrap (embedded default) or docker (production: QUANTCRAFT_SANDBOX=docker in compose).
    backend: str = Field(default_factory=lambda: settings.current().sandbox)
    docker_image: str = Field(default_factory=lambda: settings.current().sandbox_image)
    memory_bytes: int = protocol.MEMORY_BYTES
    pids: int = protocol.PIDS
    engine_cpus: list[int] = Field(default_factory=list)
    loadgen_cpus: list[int] = Field(default_factory=list)
    # The host's judging slots (judge.slots), unless engine_cpus/loadgen_cpus name the only one.
    judge_host: str = Field(default_factory=lambda: settings.current().judge_host)
    judge_cpus: list[int] = Field(default_factory=lambda: settings.current().judge_cpus or [])
    cpus_per_slot: int = Field(default_factory=lambda: settings.current().cpus_per_slot)
    slots_dir: str = Field(default_factory=lambda: str(settings.current().slots_dir))
    _run_id: str = PrivateAttr(default="")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Docker sandboxes are labelled with the run judging them.
        self._run_id = context.run.run_id if context.run else ""

    def cpus(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        engine, loadgen = split_cpus()
        return tuple(self.engine_cpus) or engine, tuple(self.loadgen_cpus) or loadgen

    def slots(self) -> list[Slot]:
        if self.engine_cpus or self.loadgen_cpus:
            return [Slot(*self.cpus())]
        return host_slots(self.judge_cpus or None, self.cpus_per_slot)

    def slot_keys(self) -> list[str]:
        """This host's slots by name (``judge.slots.slot_key``): the partitions of their calibrations."""
        return [slot_key(self.judge_host, slot) for slot in self.slots()]

    def slot_key(self, config: JudgeConfig) -> str:
        """The name of the slot ``config`` was placed on by :meth:`slot`."""
        return slot_key(self.judge_host, Slot(config.engine_cpus, config.loadgen_cpus))

    @contextlib.contextmanager
    def slot(self, config: JudgeConfig, key: str | None = None) -> Iterator[JudgeConfig]:
        """``config`` placed on a free judging slot of this host (``key``: that slot, once free),
        held for the block: whichever worker or process judges, no two judgings on a host ever
        share a CPU (``judge.slots``)."""
        slots = self.slots()
        if key is not None:
            if host_of(key) != self.judge_host:
                raise dg.Failure(f"slot {key} is not on this host ({self.judge_host}): it must run there")
            slots = [s for s in slots if slot_key(self.judge_host, s) == key]
            if not slots:
                raise dg.Failure(f"this host has no slot {key}: its slots are {', '.join(self.slot_keys())}")
        with take_slot(Path(self.slots_dir), slots) as slot:
            yield replace(config, engine_cpus=slot.engine_cpus, loadgen_cpus=slot.loadgen_cpus)

    def sandbox(self, config: JudgeConfig) -> Sandbox:
        if self.backend == "docker":
            return docker_sandbox(config, self.docker_image, self._run_id)
        if self.backend == "bubblewrap":
            return BubblewrapSandbox(config.sandbox_limits())
        raise dg.Failure(f"unknown sandbox backend {self.backend!r}: use 'bubblewrap' or 'docker'")


class ContestResource(dg.ConfigurableResource):
    """The organisers' secret that official traces derive from. Set it with
    ``dg.EnvVar("QUANTCRAFT_OFFICIAL_SECRET")``: Dagster resolves it at run time and never shows
    it; the seeds derived from it are never logged, stored in metadata or shown either."""

    official_secret: str

    def spec(self, profile: str, phase: str, submission: str | None) -> trace.PhaseSpec:
        """The official spec of ``submission``'s judging, or of the finals' shared set for None."""
        return trace.official(trace.get_spec(profile, phase), self.official_secret, submission)


class ScoringResource(dg.ConfigurableResource):
    """The contest's scoring and ranking: one home, read by the judge (which scores each judging
    on the preset's scale), the standings and the finals (which score stored judgings again on
    it). ``preset`` empty: the ``QUANTCRAFT_SCORING`` setting, read at run time."""

    preset: str = ""
    ranking_policy: str = RankingConfig().policy

    def config(self) -> ScoringConfig:
        return preset(self.preset) if self.preset else settings.current().scale()

    def ranking(self) -> RankingConfig:
        return RankingConfig(self.ranking_policy)


class JudgingResource(dg.ConfigurableResource):
    """The judging profile and timeouts used for every submission."""

    profile: str = "standard"
    port: int = protocol.PORT
    report_timeout_s: float = protocol.REPORT_TIMEOUT_S
    health_timeout_s: float = protocol.HEALTH_TIMEOUT_S
    phase_time_limit_s: float = protocol.PHASE_TIME_LIMIT_S
    # core.trial.ValidityConfig's bounds: raise them only on a host known to be noisy (tests on a VM)
    max_send_lag_p99_us: float = ValidityConfig().max_send_lag_p99_us
    max_interference: float = ValidityConfig().max_interference

    def config(self, sandbox: SandboxResource, scoring: ScoringResource) -> JudgeConfig:
        engine, loadgen = sandbox.cpus()
        return JudgeConfig(
            profile=self.profile,
            port=self.port,
            engine_cpus=engine,
            loadgen_cpus=loadgen,
            memory_bytes=sandbox.memory_bytes,
            pids=sandbox.pids,
            report_timeout_s=self.report_timeout_s,
            health_timeout_s=self.health_timeout_s,
            phase_time_limit_s=self.phase_time_limit_s,
            scoring=scoring.config(),
            validity=ValidityConfig(
                max_send_lag_p99_us=self.max_send_lag_p99_us, max_interference=self.max_interference
            ),
        )


class DuckDBResource(dg.ConfigurableResource):
    """DuckDB in-process, one private in-memory database per use: never a file shared by processes."""

    threads: int = 1

    def connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:")
        con.execute(f"SET threads = {int(self.threads)}")
        return con
