"""Chat templates render as in transformers: loopcontrols, strftime_now, tojson with
transformers' options, raise_exception; the demo model's own template."""

from __future__ import annotations

from datetime import datetime

import pytest

from reconciler.inference.chattemplate import ChatTemplateError, render_chat

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "<b>hi</b> café"},
    {"role": "assistant", "content": "hello"},
    {"role": "user", "content": "again"},
]

# Shaped like Llama 3.1's template: the date from strftime_now, loop controls to skip
# the system turn, tojson for tools.
LLAMA_LIKE = """{{- bos_token }}
{%- if not date_string is defined %}{%- set date_string = strftime_now("%d %b %Y") %}{%- endif %}
Today Date: {{ date_string }}
{% for message in messages %}
{%- if message.role == 'system' %}{% continue %}{% endif %}
{%- if loop.index > 3 %}{% break %}{% endif %}
<{{ message.role }}>{{ message.content }}
{% endfor %}
{%- if add_generation_prompt %}<assistant>{% endif %}"""


def fixed_clock() -> datetime:
    return datetime(2026, 7, 4, 9, 30)


def test_loopcontrols_and_strftime_now_render() -> None:
    text = render_chat(LLAMA_LIKE, MESSAGES, special={"bos_token": "<s>"}, clock=fixed_clock)
    assert text == (
        "<s>Today Date: 04 Jul 2026\n<user><b>hi</b> café\n<assistant>hello\n<assistant>"
    )


def test_tojson_keeps_html_and_unicode_and_takes_options() -> None:
    source = (
        "{{ messages[1] | tojson }}|{{ {'b': 1, 'a': [1]} | tojson(indent=2, sort_keys=True) }}"
    )
    text = render_chat(source, MESSAGES)
    assert text.startswith('{"role": "user", "content": "<b>hi</b> café"}|')
    assert text.endswith('{\n  "a": [\n    1\n  ],\n  "b": 1\n}')


def test_raise_exception_becomes_a_clear_error() -> None:
    source = (
        "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}"
    )
    with pytest.raises(ChatTemplateError, match="first must be user"):
        render_chat(source, MESSAGES)


def test_sandbox_refuses_unsafe_attribute_access() -> None:
    with pytest.raises(ChatTemplateError):
        render_chat("{{ messages.__class__.__mro__[1].__subclasses__() }}", MESSAGES)


def test_bad_template_syntax_is_a_chat_template_error() -> None:
    with pytest.raises(ChatTemplateError):
        render_chat("{% for m in messages %}", MESSAGES)


def test_demo_model_template_renders_conversation() -> None:
    from reconciler.inference import load_model_info
    from reconciler.inference.demo import demo_model_path

    tokenizer = load_model_info(demo_model_path()).tokenizer
    text = tokenizer.apply_chat_template(MESSAGES)
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    assert text.endswith("<|im_start|>user\nagain<|im_end|>\n<|im_start|>assistant\n")
