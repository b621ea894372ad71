"""The agents the reference knows (PROTOCOL.md section 7) and what GET /agents says of them."""

from contract.bodies import AgentInfo

DEFAULT_AGENT = "orchestrator"

AGENTS: dict[str, AgentInfo] = {
    info.type: info
    for info in (
        AgentInfo(
            type="orchestrator",
            name="Orchestrator",
            description="Routes each request to the agent that fits it.",
            allowed_tools=["read_file", "list_files"],
            has_file_restrictions=False,
        ),
        AgentInfo(
            type="coder",
            name="Coder",
            description="Writes and edits code.",
            allowed_tools=["read_file", "write_file", "list_files"],
            has_file_restrictions=False,
        ),
        AgentInfo(
            type="architect",
            name="Architect",
            description="Plans designs; writes only documentation files.",
            allowed_tools=["read_file", "list_files", "write_file"],
            has_file_restrictions=True,
        ),
        AgentInfo(
            type="debug",
            name="Debugger",
            description="Finds the cause of a failure.",
            allowed_tools=["read_file", "list_files"],
            has_file_restrictions=False,
        ),
        AgentInfo(
            type="ask",
            name="Ask",
            description="Answers questions without changing anything.",
            allowed_tools=["read_file"],
            has_file_restrictions=True,
        ),
    )
}
