"""The task level on the command line: ``recgen chat`` (a conversational recommender), ``recgen explain`` (why an
item for a user) and ``recgen tasks ...`` (their measured studies)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from recgen.cli.app import cli, dataset_options, run_study
from recgen.errors import ConfigError

llm_option = click.option(
    "--llm",
    default=None,
    help="LLM spec (llamacpp:smollm2 embedded, llamacpp:PATH.gguf, openai:URL[#MODEL]); none: rules.",
)


def _load(model_dir: Path):
    from recgen.models.base import Recommender

    return Recommender.load(model_dir)


def _llm(spec: str | None):
    if spec is None:
        return None
    from recgen.llm import load_llm

    return load_llm(spec)


@cli.command("chat")
@click.option("--model-dir", required=True, type=click.Path(path_type=Path), help="A saved model folder.")
@click.option("--user", default=None, help="Whose history to start from (a user id of the training data).")
@llm_option
@click.option("--message", "messages", multiple=True, help="Say this instead of reading the terminal (repeatable).")
@click.option("--k", default=5, show_default=True, help="Items per recommendation.")
@click.option("--json", "as_json", is_flag=True, help="Print each reply as JSON (items with their catalogue facts).")
def chat(model_dir, user, llm, messages, k, as_json) -> None:
    """Talk to a conversational recommender over a fitted model: it asks, filters, recommends catalogue items."""
    from recgen.tasks.chat import ChatSession

    session = ChatSession(_load(model_dir), user=user, llm=_llm(llm), k=k)
    lines = list(messages) if messages else None
    if lines is None:
        click.echo("Say what you are looking for (an empty line ends).", err=True)
    while True:
        if lines is not None:
            if not lines:
                break
            text = lines.pop(0)
            click.echo(f"> {text}")
        else:
            text = click.prompt(">", default="", show_default=False, prompt_suffix=" ")
            if not text.strip():
                break
        reply = session.respond(text)
        if as_json:
            click.echo(json.dumps({"action": reply.action, "text": reply.text, "items": reply.items,
                                   "relaxed": reply.relaxed, "withheld": reply.withheld}))  # fmt: skip
        else:
            click.echo(reply.text)
    sys.stdout.flush()


@cli.command("explain")
@click.option("--model-dir", required=True, type=click.Path(path_type=Path), help="A saved model folder.")
@click.option("--user", required=True, help="A user id of the training data.")
@click.option("--item", default=None, help="The item to explain (default: the user's top-1).")
@llm_option
def explain(model_dir, user, item, llm) -> None:
    """Why an item for a user: the user's history items that drive the score (measured by occlusion) and the
    item's real attributes they share."""
    from dataclasses import asdict

    from recgen.tasks.explain import Explainer

    model = _load(model_dir)
    if item is None:
        item = str(model.recommend(user, 1).item_ids[0])
    click.echo(json.dumps(asdict(Explainer(model, llm=_llm(llm)).explain(user, item)), indent=2))


@cli.group("tasks")
def tasks_group() -> None:
    """Measured studies of the task level (explanations, personalised text)."""


@tasks_group.command("explanations")
@click.argument("dataset")
@dataset_options
@click.option("--models", default="ease,sasrec", show_default=True)
@click.option("--pairs", default=500, show_default=True, help="Seeded (user, top-1 item) pairs.")
@llm_option
@click.option("--set", "sets", multiple=True, help="MODEL.FIELD=VALUE config override (repeatable).")
@click.option("--out", default="benchmarks/results/tasks", show_default=True)
def tasks_explanations(dataset, data, models, pairs, llm, sets, out) -> None:
    """Groundedness, faithfulness (vs random deletion), personalisation, USR and feature coverage."""
    from recgen.experiments.studies.explanations import run_explain_study

    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise ConfigError("--models needs at least one model")
    run_study(run_explain_study, dataset, models=names, n_pairs=pairs, llm=llm, sets=sets,
              data={k: v for k, v in data.items() if v is not None}, out_dir=out)  # fmt: skip


@tasks_group.command("personal-text")
@click.argument("dataset")
@dataset_options
@click.option("--items", default=20, show_default=True, help="Items, each rewritten for two users.")
@click.option("--model", "-m", default="ease", show_default=True)
@llm_option
@click.option("--out", default="benchmarks/results/tasks", show_default=True)
def tasks_personal_text(dataset, data, items, model, llm, out) -> None:
    """An item's description rewritten for a user, fact-checked against the catalogue; alignment measured."""
    from recgen.experiments.studies.personal_text import run_personal_text_study

    run_study(run_personal_text_study, dataset, n_items=items, model=model, llm=llm,
              data={k: v for k, v in data.items() if v is not None}, out_dir=out)  # fmt: skip


DEMO_MESSAGES = ("I'd like something lighter tonight, a comedy.", "From the 90s, please.", "No romance.")


@cli.command("demo")
@click.option("--model-dir", required=True, type=click.Path(path_type=Path), help="A saved model folder.")
@click.option("--user", default="5", show_default=True, help="Whose history to show.")
@llm_option
def demo(model_dir, user, llm) -> None:
    """One user's history, their top-5 with grounded explanations, and a scripted conversation that narrows the
    list: what generative recommendation is for, on a fitted model."""
    from recgen.tasks.catalog import Catalog
    from recgen.tasks.chat import ChatSession
    from recgen.tasks.explain import Explainer

    model = _load(model_dir)
    catalog = Catalog.from_model(model)
    backend = _llm(llm)
    u = int(model.users_.index(user, default=0))
    if u <= 0:
        raise ConfigError(f"user {user!r} is not in the model's training data; pick another with --user")
    history = [int(d) for d in model.train_history(u)]
    click.echo(f"\nUser {user} watched {len(history)} titles; the last eight:")
    for d in history[-8:]:
        click.echo(f"  - {catalog.line(d)}")
    click.echo(f"\nTheir top-5 from {model.name}, each with why (the history items that drive the score):")
    explainer = Explainer(model, catalog=catalog)
    for n, item in enumerate(model.recommend(user, 5).item_ids, 1):
        e = explainer.explain(user, str(item))
        click.echo(f"  {n}. {catalog.line(catalog.dense(str(item)))}\n     {e.text}")
    who = backend.info()["model"] if backend is not None else "rules only"
    click.echo(f"\nA short conversation ({who}; the LLM talks, the catalogue and the model decide what is shown):")
    session = ChatSession(model, user=user, llm=backend, max_questions=0)
    for text in DEMO_MESSAGES:
        reply = session.respond(text)
        click.echo(f"  user: {text}\n  recgen: " + reply.text.replace("\n", "\n          "))
    click.echo("")
