"""``recgen ctr``: like / dislike prediction on explicit feedback for any registered model."""

from __future__ import annotations

import click

from recgen.cli.app import cli, dataset_options, run_study
from recgen.errors import ConfigError


@cli.command("ctr")
@click.argument("dataset")
@dataset_options
@click.option("--models", default="pop,itemknn,ease,sasrec", show_default=True,
              help="Registered models scoring the pairs (empty: the counting baselines only).")  # fmt: skip
@click.option("--like-threshold", type=float, default=4.0, show_default=True,
              help="A rating at least this is a like (1 for a 0/1 label loaded as the rating).")  # fmt: skip
@click.option("--fit-on", type=click.Choice(["liked", "all"]), default="liked", show_default=True,
              help="Which training interactions the ranking models are fitted on.")  # fmt: skip
@click.option("--valid-frac", type=float, default=0.1, show_default=True)
@click.option("--test-frac", type=float, default=0.1, show_default=True)
@click.option("--set", "sets", multiple=True, help="MODEL.FIELD=VALUE config override (repeatable).")
@click.option("--out", default="benchmarks/results/ctr", show_default=True)
def ctr(dataset, data, models, like_threshold, fit_on, valid_frac, test_frac, sets, out) -> None:
    """AUC, user-averaged AUC and calibrated log-loss of like / dislike on a time-cut split, beside the user and
    item like-rate baselines."""
    from recgen.experiments.studies.ctr import run_ctr_study

    names = [m.strip() for m in models.split(",") if m.strip()]
    if len(set(names)) != len(names):
        raise ConfigError(f"--models names a model twice: {models}")
    run_study(run_ctr_study, dataset, models=names, like_threshold=like_threshold, fit_on=fit_on,
              valid_frac=valid_frac, test_frac=test_frac, sets=sets,
              data={k: v for k, v in data.items() if v is not None}, out_dir=out)  # fmt: skip
