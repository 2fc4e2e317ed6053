"""`mesh chat`: an interactive, multi-turn chat on the pool (or ``--local``).

Each answer is a Job of the pool (``meshctl get jobs`` lists them) whose messages are the
whole conversation, rendered by the agent with the model's chat template; tokens are
printed as they come. Commands: ``/reset`` (forget the conversation, keep the system
prompt), ``/system TEXT`` (set the system prompt and start over), ``/help``, ``/exit``.
Ctrl+C stops the current answer (its Job is cancelled) and returns to the prompt;
Ctrl+D or ``/exit`` leaves.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import typer

from manifests import Job
from meshctl.context import CliError, friendly, home, open_store
from meshctl.inference_cmd import default_pool
from meshctl.jobfollow import job_text
from meshctl.ports import ChatBackend, agent_side
from reconciler.jobcancel import request_cancel
from reconciler.singleton import running_pid
from reconciler.store import NotFound

HELP = "commands: /reset, /system TEXT, /help, /exit (Ctrl+C stops an answer, Ctrl+D leaves)"


@dataclass
class Conversation:
    """The messages so far and the system prompt."""

    system: str | None = None
    turns: list[dict[str, str]] = field(default_factory=list)

    def messages(self) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.turns

    def command(self, line: str) -> str | None:
        """Apply a /command; the text to show, or None when ``line`` is not a command."""
        name, _, arg = line.strip().partition(" ")
        if name == "/reset":
            self.turns.clear()
            return "(conversation cleared)"
        if name == "/system":
            self.system, self.turns = arg.strip() or None, []
            return (
                "(system prompt set; conversation cleared)" if self.system else "(no system prompt)"
            )
        if name == "/help":
            return HELP
        if name.startswith("/") and name != "/exit":
            return f"unknown command {name}; {HELP}"
        return None


Backend = ChatBackend


@dataclass
class PoolBackend:
    """Answers as Jobs of a pool, coordinated by this device's agent."""

    pool: str
    model: str
    sampling: dict[str, Any]
    current: str | None = None

    def answer(self, messages: list[dict[str, str]]) -> Generator[str, None, None]:
        name = f"chat-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        spec = {"pool": self.pool, "model": self.model, "messages": messages, **self.sampling}
        job = Job.model_validate({"metadata": {"name": name, "annotations": {
            "meshnet.dev/client": "mesh-chat"}}, "spec": spec})  # fmt: skip
        with open_store() as store:
            store.apply(job)
            self.current = name
            try:
                status = yield from job_text(store, name)  # pushed by the agent as it comes
            except NotFound:
                raise CliError(f"job {name} was deleted") from None
            if status.get("phase") == "Failed":
                raise CliError(f"job {name} failed: {status.get('failureReason')}: "
                               f"{status.get('failureMessage')}")  # fmt: skip
            self.current = None

    def stop(self) -> None:
        if self.current is not None:
            with open_store() as store:
                request_cancel(store, self.current, "stopped in mesh chat (Ctrl+C)")
            self.current = None


def chat_loop(backend: Backend, conversation: Conversation, read: Callable[[str], str],
              write: Callable[[str], None]) -> None:  # fmt: skip
    """Read lines, answer them, until /exit or end of input."""
    while True:
        try:
            line = read("> ")
        except EOFError:
            write("\n")
            return
        except KeyboardInterrupt:
            write(f"\n{HELP}\n")
            continue
        if line.strip() == "/exit":
            return
        if not line.strip():
            continue
        shown = conversation.command(line)
        if shown is not None:
            write(shown + "\n")
            continue
        conversation.turns.append({"role": "user", "content": line})
        conversation.turns.append(
            {"role": "assistant", "content": _answer(backend, conversation, write)}
        )


def _answer(backend: Backend, conversation: Conversation, write: Callable[[str], None]) -> str:
    text, stream = "", backend.answer(conversation.messages())
    try:
        for piece in stream:
            write(piece)
            text += piece
    except KeyboardInterrupt:
        stream.close()
        backend.stop()
        write(" [stopped]")
    except CliError as err:
        write(f"\nerror: {err}")
    write("\n")
    return text


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


@friendly
def chat(
    model: str = typer.Option(
        "demo", "--model", help="'demo', a GGUF file or a Hugging Face folder."
    ),
    system: str | None = typer.Option(None, "--system", help="A system prompt."),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1, help="Longest answer, in tokens."),
    temperature: float = typer.Option(0.7, "--temperature", min=0.0, help="0 = greedy."),
    seed: int | None = typer.Option(None, "--seed", help="Sampling seed (default: random)."),
    local: bool = typer.Option(False, "--local", help="Run on this device alone, without a pool."),
    pool: str | None = typer.Option(None, "--pool", help="Pool to run on (default: the only one)."),
) -> None:
    """Chat with the model on the pool: /reset, /system TEXT, /exit; Ctrl+C stops an answer."""
    import readline  # noqa: F401  (line editing and history for input())

    sampling: dict[str, Any] = {"maxTokens": max_tokens, "temperature": temperature,
                                "seed": seed if seed is not None else secrets.randbelow(2**31)}  # fmt: skip
    backend: Backend
    if local:
        backend = agent_side().local_chat(model, sampling)
    else:
        if not running_pid(home().agent_lock):
            raise CliError(
                "no agent is running for this device: start it with `mesh start` (or use --local)"
            )
        with open_store() as store:
            target = default_pool(store, pool)
        backend = PoolBackend(target, model, sampling)
    where = (
        "this device"
        if local
        else f"pool {backend.pool if isinstance(backend, PoolBackend) else ''}"
    )
    _write(f"chatting with {model} on {where}; {HELP}\n")
    chat_loop(backend, Conversation(system), input, _write)
