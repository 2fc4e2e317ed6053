"""`mesh chat`'s loop: commands, history sent to the model, Ctrl+C stops an answer but
not the chat, Ctrl+C at the prompt does not leave, Ctrl+D and /exit do."""

from __future__ import annotations

from collections.abc import Generator

from meshctl.chat_cmd import Conversation, chat_loop


class Script:
    """Input lines (or exceptions to raise), and a backend that records what it got."""

    def __init__(self, lines: list[str | type[BaseException]], interrupt_answer: int = -1) -> None:
        self.lines: list[str | type[BaseException]] = list(lines)
        self.out = ""
        self.asked: list[list[dict[str, str]]] = []
        self.stops, self.interrupt_answer = 0, interrupt_answer

    def read(self, _prompt: str) -> str:
        item = self.lines.pop(0) if self.lines else EOFError
        if isinstance(item, type):
            raise item()
        return item

    def write(self, text: str) -> None:
        self.out += text

    def answer(self, messages: list[dict[str, str]]) -> Generator[str, None, None]:
        self.asked.append([dict(m) for m in messages])
        yield "Hi"
        if len(self.asked) - 1 == self.interrupt_answer:
            raise KeyboardInterrupt
        yield " there"

    def stop(self) -> None:
        self.stops += 1


def test_history_and_system_prompt_reach_the_model() -> None:
    script = Script(["hello", "and again", "/exit", "never read"])
    chat_loop(script, Conversation("Be kind."), script.read, script.write)
    assert script.asked[1] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hi there"},
        {"role": "user", "content": "and again"},
    ]
    assert script.lines == ["never read"]


def test_reset_and_system_commands() -> None:
    script = Script(["one", "/reset", "two", "/system Short.", "three", "/system", "four"])
    chat_loop(script, Conversation(), script.read, script.write)
    assert script.asked[1] == [{"role": "user", "content": "two"}]
    assert script.asked[2] == [
        {"role": "system", "content": "Short."},
        {"role": "user", "content": "three"},
    ]
    assert script.asked[3] == [{"role": "user", "content": "four"}]
    assert "(conversation cleared)" in script.out


def test_ctrl_c_stops_the_answer_and_the_chat_goes_on() -> None:
    script = Script(["tell a story", "next"], interrupt_answer=0)
    chat_loop(script, Conversation(), script.read, script.write)
    assert script.stops == 1 and "Hi [stopped]" in script.out
    assert script.asked[1][1] == {
        "role": "assistant",
        "content": "Hi",
    }  # the partial answer is kept
    assert script.asked[1][2] == {"role": "user", "content": "next"}


def test_ctrl_c_at_the_prompt_does_not_leave_ctrl_d_does() -> None:
    script = Script([KeyboardInterrupt, "still here", EOFError, "never read"])
    chat_loop(script, Conversation(), script.read, script.write)
    assert len(script.asked) == 1 and script.lines == ["never read"]
    assert "/exit" in script.out  # the hint shown after Ctrl+C


def test_unknown_command_is_not_sent_to_the_model() -> None:
    script = Script(["/nonsense"])
    chat_loop(script, Conversation(), script.read, script.write)
    assert script.asked == [] and "unknown command /nonsense" in script.out
