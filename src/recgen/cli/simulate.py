"""``recgen simulate``: simulated users built from real users' training data (sessions, fidelity, interactive
evaluation of recommenders, dialogue with a hidden target)."""

from __future__ import annotations

import click

from recgen.cli.app import cli, dataset_options, log, run_study
from recgen.errors import ConfigError

llm_spec_option = click.option(
    "--llm",
    default=None,
    help="LLM spec for the llm deciders / LLM users: llamacpp:smollm2 (embedded), llamacpp:PATH.gguf, hf:PATH, "
    "openai:URL[#MODEL].",
)


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{what} takes comma-separated integers such as 1,2,3,9; got {text!r}") from None


def _given(data: dict) -> dict:
    return {k: v for k, v in data.items() if v is not None}


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


@cli.group("simulate")
def simulate_group() -> None:
    """Simulated users: agents built from real users' training interactions (Agent4Rec)."""


@simulate_group.command("run")
@click.argument("dataset")
@dataset_options
@click.option("--model", "-m", default="ease", show_default=True, help="A registered model, fitted by the harness.")
@click.option("--model-dir", default=None, help="Or a saved model folder (trained on this dataset).")
@click.option("--set", "sets", multiple=True, help="Model config override key=value (repeatable).")
@click.option("--agents", default=100, show_default=True, help="Seeded test users to simulate.")
@click.option("--decider", default="grounded", show_default=True,
              help="random, popularity, grounded, llm or llm+grounded.")  # fmt: skip
@click.option("--llm", "llm", multiple=True, help="LLM spec; repeat to spread workers over several servers.")
@click.option("--llm-cache", default=None, help="SQLite response cache (a killed run then resumes its LLM calls).")
@click.option("--workers", default=1, show_default=True, help="Agents simulated at once (one decider each).")
@click.option("--page-size", default=4, show_default=True, help="Items per page (Agent4Rec: 4).")
@click.option("--no-reasons", is_flag=True, help="Do not log a reason for every watch / skip (faster with an LLM).")
@click.option("--log", "log_path", default=None, help="JSONL log of every action (default under --out).")
@click.option("--resume", is_flag=True, help="Continue a log: finished agents are not simulated again.")
@click.option("--out", default="benchmarks/results/simulation", show_default=True, help="Folder for the log.")
def simulate_run(dataset, data, model, model_dir, sets, agents, decider, llm, llm_cache, workers, page_size,
                 no_reasons, log_path, resume, out) -> None:  # fmt: skip
    """Simulated users browse one recommender's pages; every action and reason goes to a JSONL log."""
    from recgen.experiments.studies.sessions import run_simulation

    run_study(run_simulation, dataset, model=model, model_dir=model_dir, n_agents=agents, decider=decider,
              llm=list(llm), llm_cache=llm_cache, workers=workers, page_size=page_size, reasons=not no_reasons,
              log_path=log_path, resume=resume, sets=sets, data=_given(data), out_dir=out)  # fmt: skip


@simulate_group.command("fidelity")
@click.argument("dataset")
@dataset_options
@click.option("--deciders", default="random,popularity,grounded,llm,llm+grounded", show_default=True)
@click.option("--m", "ms", default="1,2,3,9", show_default=True, help="Negatives per held-out liked item.")
@click.option("--agents", default=200, show_default=True, help="Seeded test users with a held-out liked item.")
@llm_spec_option
@click.option("--llm-cache", default=None, help="SQLite response cache for the LLM deciders.")
@click.option("--out", default="benchmarks/results/simulation", show_default=True)
def simulate_fidelity(dataset, data, deciders, ms, agents, llm, llm_cache, out) -> None:
    """Agent4Rec's alignment tests: 1:m discrimination of held-out liked items, rating RMSE / MAE, rating
    distribution; one row per decider."""
    from recgen.experiments.studies.fidelity import run_fidelity_study

    run_study(run_fidelity_study, dataset, deciders=_names(deciders), ms=_ints(ms, "--m"), n_agents=agents, llm=llm,
              llm_cache=llm_cache, data=_given(data), out_dir=out)  # fmt: skip


@simulate_group.command("interactive")
@click.argument("dataset")
@dataset_options
@click.option("--models", default="pop,itemknn,ease,sasrec,hstu,tiger,diffrec", show_default=True)
@click.option("--agents", default=300, show_default=True)
@click.option("--decider", default="grounded", show_default=True)
@llm_spec_option
@click.option("--set", "sets", multiple=True, help="MODEL.FIELD=VALUE config override (repeatable).")
@click.option("--out", default="benchmarks/results/simulation", show_default=True)
def simulate_interactive(dataset, data, models, agents, decider, llm, sets, out) -> None:
    """Every model fitted by the harness serves the agents page by page; simulated metrics beside offline
    NDCG@10, with their rank agreement (Spearman, Kendall)."""
    from recgen.experiments.studies.interactive import run_interactive_study

    run_study(run_interactive_study, dataset, models=_names(models), n_agents=agents, decider=decider, llm=llm,
              sets=sets, data=_given(data), out_dir=out)  # fmt: skip


@simulate_group.command("dialogue")
@click.argument("dataset")
@dataset_options
@click.option("--users", default=100, show_default=True)
@click.option("--turns", default=5, show_default=True, help="Recommender turns before the user leaves.")
@click.option("--model", "-m", default="ease", show_default=True, help="The model every policy retrieves with.")
@click.option("--policies", default="retriever,recommend,ask-then-recommend,chat,llm-chat", show_default=True,
              help="llm-chat runs with --llm only.")  # fmt: skip
@click.option("--k", default=5, show_default=True, help="Items per recommendation.")
@llm_spec_option
@click.option("--set", "sets", multiple=True, help="Model config override key=value (repeatable).")
@click.option("--out", default="benchmarks/results/simulation", show_default=True)
def simulate_dialogue(dataset, data, users, turns, model, policies, k, llm, sets, out) -> None:
    """Conversational baselines against users who hold a hidden target (template users, and LLM-phrased ones with
    --llm); success rate, leaks, invented attributes."""
    from recgen.experiments.studies.conversation import run_dialogue_study

    run_study(run_dialogue_study, dataset, n_users=users, max_turns=turns, model=model, k=k,
              policies=_names(policies), llm=llm, sets=sets,
              data=_given(data), out_dir=out)  # fmt: skip


__all__ = ["simulate_group", "log"]
