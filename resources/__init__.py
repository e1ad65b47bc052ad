"""Dagster resources: thin configuration over the I/O adapters (no rules here)."""

import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field, PrivateAttr

from quantcraft_dagster import settings
from quantcraft_dagster.core import trace
from quantcraft_dagster.core.scoring import RankingConfig, ScoringConfig
from quantcraft_dagster.core.trial import ValidityConfig
from quantcraft_dagster.judge.cpus import split_cpus
from quantcraft_dagster.judge.docker_sandbox import SANDBOX_IMAGE, DockerSandbox
from quantcraft_dagster.judge.judging import JudgeConfig
from quantcraft_dagster.judge.sandbox import BubblewrapSandbox, Sandbox
from quantcraft_dagster.judge.slots import Slot, host_slots, take_slot
from quantcraft_dagster.storage.bucket import Bucket, LocalBucket, S3Bucket


@functools.lru_cache(maxsize=8)
def _bucket(backend: str, root: str, name: str, endpoint: str, region: str, key: str, secret: str) -> Bucket:
    if backend == "local":
        return LocalBucket(Path(root) if root else settings.bucket_root())
    if backend == "s3":
        return S3Bucket(name, endpoint or None, region, key or None, secret or None)
    raise ValueError(f"unknown bucket backend {backend!r}: use 'local' or 's3'")


class BucketResource(dg.ConfigurableResource):
    """Uploads, traces, telemetry and asset values; a folder (default) or S3/MinIO, same keys."""

    backend: str = "local"
    root: str = ""
    bucket: str = "quantcraft"
    endpoint_url: str = ""
    region: str = "us-east-1"
    access_key: str = ""
    secret_key: str = ""

    @classmethod
    def from_env(cls) -> "BucketResource":
        """From ``QUANTCRAFT_BUCKET_BACKEND`` (local | s3) and friends; default: a folder in the home."""
        env = os.environ.get
        backend = env("QUANTCRAFT_BUCKET_BACKEND", "local")
        return cls(
            backend=backend,
            root=str(settings.bucket_root()) if backend == "local" else "",
            bucket=env("QUANTCRAFT_S3_BUCKET", "quantcraft"),
            endpoint_url=env("QUANTCRAFT_S3_ENDPOINT", ""),
            region=env("AWS_REGION", "us-east-1"),
            access_key=env("AWS_ACCESS_KEY_ID", ""),
            secret_key=env("AWS_SECRET_ACCESS_KEY", ""),
        )

    def client(self) -> Bucket:
        return _bucket(
            self.backend,
            self.root,
            self.bucket,
            self.endpoint_url,
            self.region,
            self.access_key,
            self.secret_key,
        )


class SandboxResource(dg.ConfigurableResource):
    """Sandbox backend and limits (docs/protocol.md section 1) and the CPU split of this host."""

    # bubblewrap (embedded default) or docker (production: QUANTCRAFT_SANDBOX=docker in compose).
    backend: str = Field(default_factory=lambda: os.environ.get("QUANTCRAFT_SANDBOX", "bubblewrap"))
    docker_image: str = SANDBOX_IMAGE
    memory_bytes: int = 4 * 2**30
    pids: int = 256
    engine_cpus: list[int] = Field(default_factory=list)
    loadgen_cpus: list[int] = Field(default_factory=list)
    # The host's judging slots (judge.slots), unless engine_cpus/loadgen_cpus name the only one.
    judge_cpus: list[int] = Field(default_factory=lambda: settings.judge_cpus() or [])
    cpus_per_slot: int = Field(default_factory=settings.cpus_per_slot)
    slots_dir: str = Field(default_factory=lambda: str(settings.slots_dir()))
    _run_id: str = PrivateAttr(default="")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._run_id = context.run_id or ""  # Docker sandboxes are labelled with the run judging them

    def cpus(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        engine, loadgen = split_cpus()
        return tuple(self.engine_cpus) or engine, tuple(self.loadgen_cpus) or loadgen

    def slots(self) -> list[Slot]:
        if self.engine_cpus or self.loadgen_cpus:
            return [Slot(*self.cpus())]
        return host_slots(self.judge_cpus or None, self.cpus_per_slot)

    @contextlib.contextmanager
    def slot(self, config: JudgeConfig) -> Iterator[JudgeConfig]:
        """``config`` placed on a free judging slot of this host, held for the block: whichever
        worker or process judges, no two judgings on a host ever share a CPU (``judge.slots``)."""
        with take_slot(Path(self.slots_dir), self.slots()) as slot:
            yield replace(config, engine_cpus=slot.engine_cpus, loadgen_cpus=slot.loadgen_cpus)

    def sandbox(self, config: JudgeConfig) -> Sandbox:
        if self.backend == "docker":
            return DockerSandbox.for_config(config, self.docker_image, self._run_id)
        if self.backend == "bubblewrap":
            return BubblewrapSandbox(config.sandbox_limits())
        raise dg.Failure(f"unknown sandbox backend {self.backend!r}: use 'bubblewrap' or 'docker'")


class ContestResource(dg.ConfigurableResource):
    """The organisers' secret that official traces derive from. Set it with
    ``dg.EnvVar("QUANTCRAFT_OFFICIAL_SECRET")``: Dagster resolves it at run time and never shows
    it; the seeds derived from it are never logged, stored in metadata or shown either."""

    official_secret: str

    def spec(self, profile: str, phase: str) -> trace.PhaseSpec:
        return trace.official(trace.get_spec(profile, phase), self.official_secret)


_SEED = ScoringConfig()


class ScoringResource(dg.ConfigurableResource):
    """The organiser's scoring and ranking for this contest: one home, read by the judge (which
    scores once, in ``core``) and by the standings. Defaults are the seed's."""

    latency_weight: float = _SEED.latency_weight
    throughput_weight: float = _SEED.throughput_weight
    correctness_weight: float = _SEED.correctness_weight
    latency_slope: float = _SEED.latency_slope
    throughput_k: float = _SEED.throughput_k
    ranking_policy: str = RankingConfig().policy

    def config(self) -> ScoringConfig:
        return ScoringConfig(
            latency_weight=self.latency_weight,
            throughput_weight=self.throughput_weight,
            correctness_weight=self.correctness_weight,
            latency_slope=self.latency_slope,
            throughput_k=self.throughput_k,
        )

    def ranking(self) -> RankingConfig:
        return RankingConfig(self.ranking_policy)


class JudgingResource(dg.ConfigurableResource):
    """The judging profile and timeouts used for every submission."""

    profile: str = "standard"
    port: int = 8080
    report_timeout_s: float = 5.0
    health_timeout_s: float = 30.0
    phase_time_limit_s: float = 120.0
    # core.trial.ValidityConfig's bound: raise it only on a host known to be noisy (tests on a VM)
    max_send_lag_p99_us: float = ValidityConfig().max_send_lag_p99_us

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
            validity=ValidityConfig(max_send_lag_p99_us=self.max_send_lag_p99_us),
        )


class DuckDBResource(dg.ConfigurableResource):
    """DuckDB in-process, one private in-memory database per use: never a file shared by processes."""

    threads: int = 1

    def connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:")
        con.execute(f"SET threads = {int(self.threads)}")
        return con
