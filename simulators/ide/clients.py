"""The two client models, one policy per concern. Every difference between them lives in the
concern's own module; this one only puts each model's choices together."""

from dataclasses import dataclass

from simulators.ide.chat_view import DESIGNED_VIEW, SHIPPED_VIEW, ChatView
from simulators.ide.frames_in import ContractReader, FrameReader, LenientReader
from simulators.ide.frames_out import DesignedFrames, FramesOut, ShippedFrames
from simulators.ide.rest_policy import DESIGNED_REST, SHIPPED_REST, RestPolicy
from simulators.ide.restore_service import DESIGNED_RESTORE, SHIPPED_RESTORE, RestorePolicy
from simulators.ide.session_manager import DESIGNED_MANAGER, SHIPPED_MANAGER, ManagerPolicy
from simulators.ide.settings import Client
from simulators.ide.websocket_repository import DESIGNED_SOCKET, SHIPPED_SOCKET, SocketPolicy


@dataclass(frozen=True)
class ClientModel:
    name: Client
    rest: RestPolicy
    restore: RestorePolicy
    sessions: ManagerPolicy
    socket: SocketPolicy
    frames_out: FramesOut
    frames_in: FrameReader
    view: ChatView


DESIGNED = ClientModel(
    name="designed",
    rest=DESIGNED_REST,
    restore=DESIGNED_RESTORE,
    sessions=DESIGNED_MANAGER,
    socket=DESIGNED_SOCKET,
    frames_out=DesignedFrames(),
    frames_in=ContractReader(),
    view=DESIGNED_VIEW,
)
SHIPPED = ClientModel(
    name="shipped",
    rest=SHIPPED_REST,
    restore=SHIPPED_RESTORE,
    sessions=SHIPPED_MANAGER,
    socket=SHIPPED_SOCKET,
    frames_out=ShippedFrames(),
    frames_in=LenientReader(),
    view=SHIPPED_VIEW,
)
MODELS: dict[Client, ClientModel] = {"designed": DESIGNED, "shipped": SHIPPED}
