"""Every QuantCraft setting taken from the environment: one typed object, each setting named,
defaulted and explained once, here.

``current()`` reads the environment at each call, not once at import: the sensor and the upload
API follow an organiser's change (an upload limit lifted) as soon as their processes see it, and
a test sets a variable without reloading modules. Nothing else in the project reads
``os.environ`` for a setting; the table of settings in docs/pipeline.md is ``markdown_table()``'s output
(``python -m quantcraft_dagster.settings``), and a test keeps the two equal.

Dagster resources take secrets as ``dg.EnvVar(ENV[...])`` instead (resolved at run time, never
shown in the UI); the secrets below serve the processes that are not Dagster's (leaderboard,
CLI). An empty value counts as unset: compose passes empty strings for unset variables.
"""

import os
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, get_type_hints

from .core.cpuset import parse_cpu_list
from .core.limits import UploadLimits
from .core.scoring import DEFAULT_PRESET, PRESETS, ScoringConfig, preset
from .core.trial import ValidityConfig

PROJECT = Path(__file__).resolve().parent.parent


def _flag(text: str) -> bool:
    return text.lower() not in ("0", "false", "no", "off")


def _preset_name(text: str) -> str:
    return preset(text).name  # an unknown name fails here, listing the known ones


def _path(text: str) -> Path:
    return Path(text).expanduser().resolve()


@dataclass(frozen=True, slots=True)
class Setting:
    """Where a setting comes from and what it means. ``default`` may be a function of the
    settings read before it; ``shown`` is the default as docs/pipeline.md states it, when computed."""

    env: str
    default: Any
    doc: str
    parse: Callable[[str], Any] = str
    shown: str | None = None
    secret: bool = False  # never printed (``repr``); Dagster resources take it as ``dg.EnvVar``


_VALIDITY = ValidityConfig()
_LIMITS = UploadLimits()


@dataclass(frozen=True, repr=False)
class Settings:
    # State and storage
    home: Annotated[
        Path,
        Setting(
            "QUANTCRAFT_HOME",
            lambda _: _path(".quantcraft"),
            "State folder of the embedded default: Dagster instance, bucket folder, logs, official secret",
            _path,
            "./.quantcraft",
        ),
    ]
    bucket_backend: Annotated[
        str,
        Setting(
            "QUANTCRAFT_BUCKET_BACKEND", "local", "Bucket backend: `local` (a folder) or `s3` (MinIO, S3)"
        ),
    ]
    bucket_root: Annotated[
        Path,
        Setting(
            "QUANTCRAFT_BUCKET_ROOT",
            lambda s: s["home"] / "bucket",
            "Folder of the `local` bucket",
            _path,
            "$QUANTCRAFT_HOME/bucket",
        ),
    ]
    s3_bucket: Annotated[
        str, Setting("QUANTCRAFT_S3_BUCKET", "quantcraft", "Bucket name of the `s3` backend")
    ]
    s3_endpoint: Annotated[
        str, Setting("QUANTCRAFT_S3_ENDPOINT", "", "S3 endpoint URL (MinIO's); empty: AWS")
    ]
    s3_region: Annotated[str, Setting("AWS_REGION", "us-east-1", "S3 region")]
    s3_access_key: Annotated[str, Setting("AWS_ACCESS_KEY_ID", "", "S3 access key", secret=True)]
    s3_secret_key: Annotated[str, Setting("AWS_SECRET_ACCESS_KEY", "", "S3 secret key", secret=True)]
    cache: Annotated[
        Path,
        Setting(
            "QUANTCRAFT_CACHE",
            lambda _: Path.home() / ".cache" / "quantcraft",
            "Judge host's cache of trace bundles, keyed by the code and spec that make them",
            _path,
            "~/.cache/quantcraft",
        ),
    ]
    # Judging
    official_secret: Annotated[
        str,
        Setting(
            "QUANTCRAFT_OFFICIAL_SECRET",
            "",
            "Organisers' secret the official traces derive from; unset: made once in the state folder",
            secret=True,
        ),
    ]
    profile: Annotated[
        str, Setting("QUANTCRAFT_PROFILE", "standard", "Judging profile (`standard`, `quick`)")
    ]
    scoring: Annotated[
        str,
        Setting(
            "QUANTCRAFT_SCORING",
            DEFAULT_PRESET,
            f"Scoring preset: {', '.join(f'`{name}`' for name in PRESETS)} (docs/scoring.md); changing it"
            " re-scores stored judgings, standings and finals without judging again",
            _preset_name,
        ),
    ]
    max_send_lag_p99_us: Annotated[
        float,
        Setting(
            "QUANTCRAFT_MAX_SEND_LAG_P99_US",
            _VALIDITY.max_send_lag_p99_us,
            "Trial validity bound on the load generator's send lag; raise only on a noisy host",
            float,
        ),
    ]
    max_interference: Annotated[
        float,
        Setting(
            "QUANTCRAFT_MAX_INTERFERENCE",
            _VALIDITY.max_interference,
            "Trial validity bound on the host's share of a phase B replay on the engine's CPUs",
            float,
        ),
    ]
    sandbox: Annotated[
        str, Setting("QUANTCRAFT_SANDBOX", "bubblewrap", "Sandbox backend: `bubblewrap` or `docker`")
    ]
    sandbox_image: Annotated[
        str,
        Setting("QUANTCRAFT_SANDBOX_IMAGE", "quantcraft/sandbox:bookworm", "Image of the `docker` sandbox"),
    ]
    loadgen_image: Annotated[
        str,
        Setting(
            "QUANTCRAFT_LOADGEN_IMAGE",
            "quantcraft/loadgen:latest",
            "Image of the `docker` sandbox's probe: the load generator, in the engines' namespaces",
        ),
    ]
    calibration_engines: Annotated[
        Path,
        Setting(
            "QUANTCRAFT_CALIBRATION_ENGINES",
            lambda _: PROJECT / "examples" / "engines" / "build",
            "The platform's own engines: `engine` calibrates a slot and controls trials, `trivial`"
            " measures the load generator's ceiling",
            _path,
            "examples/engines/build",
        ),
    ]
    # Judging slots of this host
    judge_host: Annotated[
        str,
        Setting(
            "QUANTCRAFT_JUDGE_HOST",
            lambda _: socket.gethostname(),
            "This judge host's name: its slots' calibrations and its own Celery queue"
            " (`<judging queue>@<name>`) go by it; unique per host",
            str,
            "the host name",
        ),
    ]
    judge_cpus: Annotated[
        list[int] | None,
        Setting(
            "QUANTCRAFT_JUDGE_CPUS",
            None,
            "CPUs this host judges on (`0-7`, `2,3,6,7`)",
            parse_cpu_list,
            "all online",
        ),
    ]
    cpus_per_slot: Annotated[
        int,
        Setting("QUANTCRAFT_CPUS_PER_SLOT", 4, "CPUs per judging slot (engine's and load generator's)", int),
    ]
    slots_dir: Annotated[
        Path,
        Setting(
            "QUANTCRAFT_SLOTS_DIR",
            Path("/run/quantcraft/slots"),
            "Host-wide folder of CPU locks every judging takes (per-boot tmpfs)",
            Path,
        ),
    ]
    # Queue and uploads
    fair_queue: Annotated[
        bool,
        Setting(
            "QUANTCRAFT_FAIR_QUEUE",
            True,
            "One judging in flight per contestant, first pending ones first; `0`: first come, first served",
            _flag,
            "1",
        ),
    ]
    uploads_per_window: Annotated[
        int,
        Setting(
            "QUANTCRAFT_UPLOADS_PER_WINDOW",
            _LIMITS.per_window,
            "Uploads per contestant per window; 0: no limit",
            int,
        ),
    ]
    upload_window_s: Annotated[
        float, Setting("QUANTCRAFT_UPLOAD_WINDOW_S", _LIMITS.window_s, "That window, in seconds", float)
    ]
    max_pending_uploads: Annotated[
        int,
        Setting(
            "QUANTCRAFT_MAX_PENDING_UPLOADS",
            _LIMITS.max_pending,
            "Judgings per contestant waiting or running at once; 0: no limit",
            int,
        ),
    ]
    uploads_in_flight: Annotated[
        int,
        Setting(
            "QUANTCRAFT_UPLOADS_IN_FLIGHT", 32, "Uploads the leaderboard receives at once; past it, 503", int
        ),
    ]
    # Leaderboard
    dagster_home: Annotated[
        str, Setting("DAGSTER_HOME", "", "The Dagster instance's folder (Dagster's own variable)")
    ]
    dagster_url: Annotated[
        str,
        Setting(
            "QUANTCRAFT_DAGSTER_URL", "http://127.0.0.1:3000", "Dagster UI address the leaderboard links to"
        ),
    ]
    leaderboard_poll_s: Annotated[
        float,
        Setting("QUANTCRAFT_LEADERBOARD_POLL_S", 0.2, "How often the leaderboard reads the instance", float),
    ]
    # Scale-out
    celery_broker: Annotated[
        str,
        Setting(
            "QUANTCRAFT_CELERY_BROKER",
            "redis://127.0.0.1:6379/0",
            "Where judging runs are queued (Redis URL)",
        ),
    ]
    celery_backend: Annotated[
        str,
        Setting(
            "QUANTCRAFT_CELERY_BACKEND",
            "redis://127.0.0.1:6379/1",
            "Where task states are kept (run monitoring reads them)",
        ),
    ]
    judging_queue: Annotated[
        str, Setting("QUANTCRAFT_JUDGING_QUEUE", "judging", "Celery queue of judging runs")
    ]

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Settings":
        values: dict[str, Any] = {}
        for name, setting in SETTINGS.items():
            text = (environ.get(setting.env) or "").strip()
            if text:
                values[name] = setting.parse(text)
            else:
                default = setting.default
                values[name] = default(values) if callable(default) else default
        return cls(**values)

    def __repr__(self) -> str:
        shown = (f"{n}={'***' if s.secret else repr(getattr(self, n))}" for n, s in SETTINGS.items())
        return f"Settings({', '.join(shown)})"

    def host_queue(self, host: str) -> str:
        """The Celery queue only ``host``'s worker takes: work that must run there (its slots'
        calibrations), beside the judging queue every worker takes."""
        return f"{self.judging_queue}@{host}"

    def upload_limits(self) -> UploadLimits:
        return UploadLimits(self.uploads_per_window, self.upload_window_s, self.max_pending_uploads)

    def validity(self) -> ValidityConfig:
        """The trial validity bounds, with the rest of ``ValidityConfig`` at its defaults."""
        return ValidityConfig(
            max_send_lag_p99_us=self.max_send_lag_p99_us, max_interference=self.max_interference
        )

    def scale(self) -> ScoringConfig:
        """The scoring preset this contest scores on."""
        return preset(self.scoring)

    def organisers_secret(self) -> str:
        """``official_secret``, else one made once in the state folder (mode 0600), so the embedded
        default judges on official traces from its first start. Never printed or logged."""
        if self.official_secret:
            return self.official_secret
        path = self.home / "official-secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        return path.read_text().strip()


SETTINGS: dict[str, Setting] = {
    name: hint.__metadata__[0] for name, hint in get_type_hints(Settings, include_extras=True).items()
}
ENV: dict[str, str] = {name: setting.env for name, setting in SETTINGS.items()}
"""The variable behind each setting, for ``dg.EnvVar`` and for passing settings to child processes."""


def current() -> Settings:
    """The settings as this process's environment holds them now."""
    return Settings.from_env(os.environ)


def markdown_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for setting in SETTINGS.values():
        default = setting.shown or setting.default
        shown = f"`{default}`" if default != "" else "(empty)"
        rows.append(f"| `{setting.env}` | {shown} | {setting.doc}{' (secret)' if setting.secret else ''} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
