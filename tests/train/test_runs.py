"""Training runs with lineage: MLflow (embedded and a real server), the model artefact, residency, Ray Train."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from datadrive.compute import InlineEngine
from datadrive.curate import (
    AV2_FEATURES,
    DatasetQuery,
    FeatureCache,
    SplitSpec,
    build_cache,
    create_dataset,
    load_dataset,
)
from datadrive.errors import ResidencyError
from datadrive.lake import Lake, Principal
from datadrive.models import ModelSpec, load_model
from datadrive.train import TrackingSettings, TrainConfig, train_run
from learning_fixtures import SampleLake, learning_config
from services import RAY_ENV, RayCluster, free_ports, ray_cluster, stop_group, venv_binary, wait_until

__all__ = ["ray_cluster"]  # the fixture, imported so pytest finds it here

# MLflow 3.17's SQL store uses an SQLAlchemy 2.1 loader option that SQLAlchemy deprecates; not ours to fix
pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)

TINY = ModelSpec("transformer", {"d_model": 16, "heads": 2, "encoder_layers": 1, "decoder_layers": 1})


def test_a_run_is_tracked_registered_and_stored_as_the_regions_model(
    sample_lake: SampleLake, small_cache_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    lake = sample_lake.lake()
    manifest = load_dataset(lake, "samples", "eu-central")
    cache = FeatureCache(small_cache_path)
    report = train_run(
        lake,
        manifest,
        cache,
        TrainConfig(model=TINY, epochs=2, batch_size=8),
        run_name="tracked",
        code={"git_commit": "abc123"},
    )
    # MLflow's INFO chatter (creating tables, model versions) stays off stderr, beside the progress bar
    assert "INFO mlflow" not in capfd.readouterr().err
    # the model is the region's artefact, with its lineage
    data, prov = lake.read_derived("eu-central", report.model_object)
    assert prov["kind"] == "model"
    assert prov["derived_from"] == {"region": "eu-central", "lake_version": manifest.lake_version}
    _, features, _ = load_model(data)
    assert features == cache.config
    # MLflow: params, one metric value per epoch, lineage tags, a registered version with the same tags
    client = MlflowClient(report.tracking_uri, registry_uri=report.tracking_uri)
    run = client.get_run(report.mlflow_run_id)
    assert run.data.params["model"] == "transformer"
    assert run.data.params["epochs"] == "2"
    assert run.data.tags["datadrive.dataset"] == "samples"
    assert run.data.tags["datadrive.lake_version"] == str(manifest.lake_version)
    assert run.data.tags["git_commit"] == "abc123"
    assert [m.step for m in client.get_metric_history(report.mlflow_run_id, "train_loss")] == [1, 2]
    assert run.info.status == "FINISHED"
    mv = client.get_model_version("samples-transformer", report.model_version)
    assert mv.run_id == report.mlflow_run_id
    assert mv.tags["datadrive.dataset_version"] == str(manifest.version)
    # the embedded store is inside the region's root
    assert str(sample_lake.root / "eu-central") in report.tracking_uri


@pytest.fixture(scope="module")
def china_run(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, str, object]:
    """A model trained on cn-north's data by a principal in cn-north (constant velocity: no optimizer)."""
    root = tmp_path_factory.mktemp("china") / "lake"
    config = learning_config(root)
    lake = Lake(config, Principal("li", "bmw", "cn-north"))
    lake.init()
    lake.ingest([samples / "av2_motion_forecasting"], region="cn-north", engine=InlineEngine())
    m = create_dataset(
        lake,
        "cn",
        "cn-north",
        DatasetQuery.sql("SELECT scenario_id FROM scenarios"),
        split=SplitSpec.parse("100"),
    )
    cache = FeatureCache(build_cache(lake, m, AV2_FEATURES, engine=InlineEngine()).path)
    report = train_run(
        lake,
        m,
        cache,
        TrainConfig(model=ModelSpec("constant_velocity"), epochs=1, val_split=None),
        run_name="cv",
        tracking=TrackingSettings(enabled=False),
    )
    return lake, report.model_object, m


def test_a_model_of_china_data_may_not_leave_and_the_refusal_is_audited(china_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lake, obj, _ = china_run
    with pytest.raises(ResidencyError, match="does not let model artefacts leave"):
        lake.export(obj, region="cn-north", to="eu-central")
    with pytest.raises(ResidencyError):
        lake.export(obj, region="cn-north", to="external", dest_path=tmp_path)
    refused = [
        r
        for r in lake.audit_log("cn-north").to_pylist()
        if r["outcome"] == "refused" and r["action"] == "export"
    ]
    assert len(refused) >= 2
    assert not list(tmp_path.rglob("*.pt"))


def test_training_on_a_region_from_abroad_is_refused(china_run) -> None:  # type: ignore[no-untyped-def]
    lake, _, m = china_run
    abroad = Lake(lake.config, Principal("ana", "bmw", "eu-central"))
    from datadrive.train import run_folder

    with pytest.raises(ResidencyError):
        run_folder(abroad, m, "stolen")
    with pytest.raises(ResidencyError):
        load_dataset(abroad, "cn", "cn-north")


def test_a_model_of_eu_data_may_leave_as_its_policy_allows(
    sample_lake: SampleLake, small_cache_path: Path, tmp_path: Path
) -> None:
    lake = sample_lake.lake()
    manifest = load_dataset(lake, "samples", "eu-central")
    report = train_run(
        lake,
        manifest,
        FeatureCache(small_cache_path),
        TrainConfig(model=ModelSpec("constant_velocity"), epochs=1),
        run_name="cv-eu",
        tracking=TrackingSettings(enabled=False),
    )
    out = lake.export(report.model_object, region="eu-central", to="external", dest_path=tmp_path)
    assert Path(out.destination).exists()
    load_model(Path(out.destination))


@pytest.mark.slow
@pytest.mark.service
def test_tracking_server(sample_lake: SampleLake, tmp_path: Path) -> None:
    """A real ``mlflow server`` on 127.0.0.1: the run and the model version land there."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    mlflow = venv_binary("mlflow")
    if mlflow is None:
        pytest.skip("the mlflow command is not installed")
    (port,) = free_ports(1)
    log = tmp_path / "mlflow.log"
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            [mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination", str(tmp_path / "art")],
            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "MLFLOW_HOST": "127.0.0.1"},
        )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        import urllib.request

        wait_until(
            lambda: urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200,
            "mlflow server",
            240,
            log,
        )
        lake = sample_lake.lake()
        report = train_run(
            lake,
            load_dataset(lake, "samples", "eu-central"),
            FeatureCache(sample_lake.cache_path),
            TrainConfig(model=ModelSpec("constant_velocity"), epochs=1),
            run_name="served",
            tracking=TrackingSettings(tracking_uri=uri, registered_model="served-cv"),
        )
        client = MlflowClient(uri, registry_uri=uri)
        assert client.get_run(report.mlflow_run_id).data.tags["datadrive.region"] == "eu-central"
        assert client.get_model_version("served-cv", "1").run_id == report.mlflow_run_id
    finally:
        stop_group(proc, grace_s=10)


@pytest.mark.slow
@pytest.mark.service
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Train 2.60 warns about its own settings
def test_ray_train_on_the_loopback_cluster(
    sample_lake: SampleLake, small_cache_path: Path, ray_cluster: RayCluster
) -> None:
    """Ray Train: 2 workers (one per node of the loopback cluster), gloo, the model stored in the region."""
    pytest.importorskip("ray.train")
    from datadrive.train import RaySettings

    lake = sample_lake.lake()
    report = train_run(
        lake,
        load_dataset(lake, "samples", "eu-central"),
        FeatureCache(small_cache_path),
        TrainConfig(model=TINY, epochs=1, batch_size=8, threads=1),
        run_name="on-ray",
        tracking=TrackingSettings(enabled=False),
        engine="ray",
        ray=RaySettings(address=ray_cluster.address, num_workers=2),
        ray_env={**RAY_ENV, "OMP_NUM_THREADS": "1"},
    )
    assert report.steps > 0
    data, _ = lake.read_derived("eu-central", report.model_object)
    load_model(data)
