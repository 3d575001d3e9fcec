"""HTTP controllers, one module per resource (ARCHITECTURE §2)."""

from __future__ import annotations

from typing import Any


def api_controllers() -> list[Any]:
    """The session/token-authenticated API controllers, in catalogue order (SPEC S9.6)."""
    from relay_server.controllers import interactive, simulate, subscriptions, voice
    from relay_server.controllers.alerts import AlertsController, ExplainController
    from relay_server.controllers.auth import AuthController, ProfileController
    from relay_server.controllers.channels import ChannelsController
    from relay_server.controllers.groups import GroupMembershipsController, GroupsController
    from relay_server.controllers.rotations import (
        CalendarController,
        RotationItemsController,
        RotationsController,
    )
    from relay_server.controllers.routes import RoutesController
    from relay_server.controllers.silences import CategoriesController, SilencesController
    from relay_server.controllers.teams import TeamMembershipsController, TeamsController
    from relay_server.controllers.users import (
        AdminUsersController,
        AuditLogsController,
        PluginsController,
        UsersController,
    )

    return [
        AuthController,
        ProfileController,
        GroupsController,
        GroupMembershipsController,
        UsersController,
        AdminUsersController,
        AuditLogsController,
        PluginsController,
        TeamsController,
        TeamMembershipsController,
        RotationsController,
        RotationItemsController,
        CalendarController,
        ChannelsController,
        RoutesController,
        SilencesController,
        CategoriesController,
        AlertsController,
        ExplainController,
        *simulate.CONTROLLERS,
        *subscriptions.CONTROLLERS,
        *interactive.CONTROLLERS,
        *voice.CONTROLLERS,
    ]
