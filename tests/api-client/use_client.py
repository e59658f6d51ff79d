"""Uses the client openapi-python-client generated from the served OpenAPI document, as an
application would: publishes two messages to a topic with a token, reads the topic's history
back, and checks a refused request gets the documented error body. Exits non-zero on any
difference. Usage: use_client.py GENERATED_DIR URL TOKEN"""
import sys

sys.path.insert(0, sys.argv[1])

from ssehub_client import AuthenticatedClient, Client  # noqa: E402
from ssehub_client.api.publish import create_message  # noqa: E402
from ssehub_client.api.topics import topic_events  # noqa: E402
from ssehub_client.models import Accepted, ErrorBody, HistoryPage, PublishJson  # noqa: E402

url, token = sys.argv[2], sys.argv[3]
client = AuthenticatedClient(base_url=url, token=token, raise_on_unexpected_status=True)

ids = []
for text in ("first from the generated client", "second, with a named event"):
    event = "note" if text.startswith("second") else None
    body = PublishJson(message=text, topic="generated/client")
    if event:
        body.event = event
    answer = create_message.sync(client=client, body=body)
    assert isinstance(answer, Accepted), answer
    assert answer.data.message == text and answer.data.topic == "generated/client", answer
    ids.append(answer.data.id)

page = topic_events.sync("generated/client", client=client)
assert isinstance(page, HistoryPage), page
assert [e.id for e in page.events] == ids, (page.events, ids)
assert [e.event for e in page.events] == ["message", "note"], page.events

page = topic_events.sync("generated/client", client=client, after=ids[0])
assert [e.id for e in page.events] == ids[1:], page.events

refused = create_message.sync(
    client=Client(base_url=url, raise_on_unexpected_status=True),
    body=PublishJson(message="no token", topic="generated/client"),
)
assert isinstance(refused, ErrorBody) and refused.error, refused
print(f"generated client: published {len(ids)}, read them back in order, refused without a token")
