"""The markdown transcript of a session (profile `export`, X-EXP-1)."""

from contract.bodies import Message
from reference.runtime.store import SessionState

_SPEAKERS = {"user": "User", "assistant": "Assistant", "system": "System", "tool": "Tool"}


def _block(message: Message) -> str:
    speaker = _SPEAKERS[message.role]
    if message.role == "tool" and message.name:
        speaker += f" `{message.name}`"
    if message.tool_calls:
        calls = ", ".join(
            f"`{call.get('function', {}).get('name', '?')}`" for call in message.tool_calls
        )
        body = f"calls {calls}"
    else:
        body = message.content or ""
    # Quoted, so a message's own markdown headings cannot break the transcript's structure.
    quoted = "\n".join(f"> {line}" if line else ">" for line in body.splitlines() or [""])
    return f"**{speaker}**\n\n{quoted}\n"


def transcript_markdown(state: SessionState, messages: list[Message]) -> str:
    title = state.title or state.session_id
    header = [
        f"# {title}",
        "",
        f"- session: `{state.session_id}`",
        f"- created: {state.created_at}",
        f"- agent: {state.current_agent}",
        f"- messages: {len(messages)}",
        "",
        "",
    ]
    return "\n".join(header) + "\n".join(_block(message) for message in messages)
