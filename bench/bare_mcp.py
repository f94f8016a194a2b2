"""The yardstick for cold start: a bare MCP server with one tool, over stdio."""

from mcp.server import MCPServer

server = MCPServer("bare")


@server.tool()
def ping(text: str) -> str:
    """Echo the text back."""
    return text


if __name__ == "__main__":
    server.run("stdio")
