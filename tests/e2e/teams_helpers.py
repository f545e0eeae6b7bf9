"""Teams activities for end-to-end tests: the documented shapes in tests/fixtures/teams_activities
with our ids and the fake connector's serviceUrl, plus Bot Framework tokens signed with a local key."""

from __future__ import annotations

import copy
import itertools
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.conftest import EXAMPLE_AGREEMENT, FIXTURES

ACTIVITIES = FIXTURES / "teams_activities"
CARD_SCHEMA = FIXTURES / "adaptive_cards_schema" / "adaptive-card.v1.5.0.json"
MANIFEST_SCHEMA = FIXTURES / "teams_manifest_schema" / "MicrosoftTeams.schema.v1.17.json"

TENANT = "b28fdbfd-2b78-4f93-b0f8-8881793f0f8f"
BOT = {"id": "28:608cacfd-1cea-40c9-b678-4b93e69bb72b", "name": "slabot"}
TEAM_ID = "19:zFLSDFWsesfzcmKArqKJ-65aOXJz@sgf462H2wz41@thread.tacv2"
GENERAL = "19:0b7f32667e064dd9b25d7969801541f4@thread.tacv2"
LEADS_CHANNEL = "19:9d1c0a3b5c2e4f7a8b6c5d4e3f2a1b0c@thread.tacv2"
APP_ID = "608cacfd-1cea-40c9-b678-4b93e69bb72b"
_MESSAGE_IDS = itertools.count(int(time.time() * 1000))

#: People of the test agreement in Teams: (29: id, AAD object id, e-mail).
PEOPLE = {
    "ana": ("29:1ana", "aad-ana", "ana@acme.example"),
    "ben": ("29:1ben", "aad-ben", "ben@acme.example"),
    "cho": ("29:1cho", "aad-cho", "cho@acme.example"),
    "priya": ("29:1priya", "aad-priya", "priya@acme.example"),
    "sam": ("29:1sam", "aad-sam", "sam@acme.example"),
    "stranger": ("29:1stranger", "aad-stranger", "stranger@elsewhere.example"),
}


def fixture(name: str) -> dict[str, Any]:
    found = next(ACTIVITIES.rglob(name))
    return json.loads(found.read_text())  # type: ignore[no-any-return]


def user(who: str) -> dict[str, Any]:
    mri, aad, _ = PEOPLE[who]
    return {"id": mri, "name": who.title(), "aadObjectId": aad}


def member(who: str) -> dict[str, Any]:
    """How the connector's member lookup reports a person (TeamsChannelAccount)."""
    mri, aad, email = PEOPLE[who]
    return {"id": mri, "name": who.title(), "aadObjectId": aad, "email": email,
            "userPrincipalName": email, "tenantId": TENANT}


def agreement_with_teams_ids(tmp_path: Path) -> Path:
    """The example agreement with `teams:` (AAD object) ids for the SMB team and the VPs."""
    data = yaml.safe_load(EXAMPLE_AGREEMENT.read_text())
    smb = next(t for t in data["teams"] if t["key"] == "smb")
    smb["manager"]["teams"] = PEOPLE["priya"][1]
    for rep in smb["reps"]:
        rep["teams"] = PEOPLE[rep["key"]][1]
    data["people"]["sales_vp"]["teams"] = PEOPLE["sam"][1]
    path = tmp_path / "agreement.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def team_install(service_url: str) -> dict[str, Any]:
    """conversationUpdate: the bot was added to a team (docs shape), selected channel = LEADS_CHANNEL."""
    body = copy.deepcopy(fixture("conversationUpdate_bot_added_to_team.json"))
    body.update(serviceUrl=service_url, recipient=BOT, membersAdded=[{"id": BOT["id"]}], **{"from": user("priya")})
    body["conversation"].update(id=GENERAL, tenantId=TENANT)
    body["channelData"].update(team={"id": TEAM_ID, "name": "Sales", "aadGroupId": str(uuid.uuid4())},
                               tenant={"id": TENANT}, settings={"selectedChannel": {"id": LEADS_CHANNEL}})
    return body


def personal_install(service_url: str, who: str) -> dict[str, Any]:
    body = copy.deepcopy(fixture("conversationUpdate_bot_added_personal.json"))
    mri, aad, _ = PEOPLE[who]
    body.update(serviceUrl=service_url, recipient=BOT, **{"from": {"id": mri, "aadObjectId": aad}},
                membersAdded=[{"id": BOT["id"]}, {"id": mri, "aadObjectId": aad}])
    body["conversation"] = {"conversationType": "personal", "tenantId": TENANT, "id": personal_chat(who)}
    body["channelData"] = {"tenant": {"id": TENANT}}
    return body


def personal_chat(who: str) -> str:
    return f"a:1personal-{who}"


def channel_message(service_url: str, who: str, text: str, *, channel: str = LEADS_CHANNEL) -> dict[str, Any]:
    """`@slabot <text>` posted in a team channel (a new thread: conversation id with ;messageid=)."""
    body = copy.deepcopy(fixture("message_with_value_messageBack_channel.json"))
    body.pop("value", None)
    message_id = str(next(_MESSAGE_IDS))
    body.update(serviceUrl=service_url, recipient=BOT, id=message_id, text=f"<at>slabot</at> {text}",
                textFormat="plain", **{"from": user(who)})
    body["conversation"] = {"isGroup": True, "conversationType": "channel", "tenantId": TENANT,
                            "id": f"{channel};messageid={message_id}"}
    body["entities"] = [{"type": "mention", "text": "<at>slabot</at>",
                         "mentioned": {"id": BOT["id"], "name": "slabot"}}]
    body["channelData"] = {"channel": {"id": channel}, "team": {"id": TEAM_ID}, "tenant": {"id": TENANT}}
    return body


def personal_message(service_url: str, who: str, text: str) -> dict[str, Any]:
    body = copy.deepcopy(fixture("message_personal.json"))
    body.update(serviceUrl=service_url, recipient=BOT, text=text, id=str(next(_MESSAGE_IDS)),
                **{"from": user(who)})
    body["conversation"] = {"conversationType": "personal", "tenantId": TENANT, "id": personal_chat(who)}
    body["channelData"] = {"tenant": {"id": TENANT}}
    return body


def card_click(service_url: str, *, who: dict[str, Any], verb: str, data: dict[str, Any],
               thread: str, activity_id: str) -> dict[str, Any]:
    """invoke adaptiveCard/action: a click on the card `activity_id` in channel thread `thread`."""
    body = copy.deepcopy(fixture("invoke_adaptiveCard_action_personal.json"))
    body.update(serviceUrl=service_url, recipient=BOT, id=f"f:{uuid.uuid4()}", replyToId=activity_id,
                **{"from": who})
    body["conversation"] = {"isGroup": True, "conversationType": "channel", "tenantId": TENANT, "id": thread}
    body["channelData"] = {"channel": {"id": thread.split(";")[0]}, "team": {"id": TEAM_ID},
                           "tenant": {"id": TENANT}, "source": {"name": "message"}}
    body["value"] = {"action": {"type": "Action.Execute", "id": verb, "verb": verb, "data": data},
                     "trigger": "manual"}
    return body


# --- schemas -------------------------------------------------------------------------------------


def card_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(CARD_SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)   # draft-06, from its $schema
    assert cls is jsonschema.Draft6Validator
    return cls(schema)


def assert_valid_card(content: dict[str, Any]) -> None:
    """Valid Adaptive Card 1.5. `msteams` (width, mention entities) is a Teams host extension the
    Adaptive Card schema does not know (its root forbids extra properties), so it is checked apart."""
    card = {k: v for k, v in content.items() if k != "msteams"}
    errors = sorted(card_validator().iter_errors(card), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors)
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.5"
    for entity in (content.get("msteams") or {}).get("entities", []):
        assert entity["type"] == "mention" and entity["text"].startswith("<at>")
        assert entity["mentioned"]["id"] and entity["mentioned"]["name"]


# --- tokens ---------------------------------------------------------------------------------------


class Signer:
    """A local RSA key standing in for the Bot Framework's JWKS."""

    def __init__(self, kid: str = "test-key-1") -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=kid, alg="RS256", use="sig")
        self.jwk = jwt.PyJWK.from_dict(jwk)

    def token(self, *, aud: str = APP_ID, iss: str = "https://api.botframework.com",
              service_url: str = "https://smba.trafficmanager.net/amer/", expires_in: int = 600,
              **claims: Any) -> str:
        now = int(time.time())
        payload = {"aud": aud, "iss": iss, "serviceurl": service_url, "nbf": now - 5, "iat": now - 5,
                   "exp": now + expires_in, **claims}
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": self.kid})

    async def get_signing_key(self, jwks_uri: str, header: dict[str, Any]) -> jwt.PyJWK:
        """Replaces the SDK's JWKS download: only our key id is known."""
        if header.get("kid") != self.kid:
            raise jwt.PyJWKClientError(f"Unable to find a signing key that matches: {header.get('kid')}")
        return self.jwk


def unsigned_token(**claims: Any) -> str:
    """A token with `alg: none` (no signature): must never be accepted."""
    now = int(time.time())
    payload = {"aud": APP_ID, "iss": "https://api.botframework.com", "exp": now + 600, **claims}
    return jwt.encode(payload, None, algorithm="none")  # type: ignore[arg-type]
