"""Webhook deliveries shaped as WordPress sends them change the aggregates: endpoint -> Kafka ->
worker -> database, with the spam flip taking the comment (and the reply under it) out of the counts; the output
messages, the deletions among them, validate against the shipped JSON Schemas."""

from __future__ import annotations

import sqlalchemy as sa
from test_ingest_http import _client, _post, row, wp_webhooks

from streams.publisher import ensure_topics
from streams.settings import Settings
from tests.integration.output_schemas import assert_valid_outputs, output_messages
from tests.integration.worker_proc import running_worker, wait_until


async def test_webhook_deliveries_change_the_aggregates(broker, unique, tmp_path):
    ensure_topics(Settings(broker=broker))
    site = f"wp-agg-{unique}"
    url = f"sqlite:///{tmp_path / 'sink.db'}"
    engine = sa.create_engine(url)

    def counts():
        with engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "select comments, replies, pingbacks, post_author_replies from post_engagement "
                    "where site = :s and post_id = 375"
                ),
                {"s": site},
            ).first()

    async def deliver(*bodies):
        for body in bodies:
            status, answer, _ = await _post(
                client, "/ingest/wordpress", body, headers={"X-Blogpulse-Site": site}
            )
            assert status == 202, answer

    client = await _client(Settings(broker=broker), site=site)
    try:
        with running_worker(broker, f"it-ingest-{unique}", url, tmp_path / "worker.log") as worker:
            await deliver(
                wp_webhooks("create_comment", row(10)),
                wp_webhooks(
                    "create_comment", row(11, parent=10, email="owner@example.org", user_id="1")
                ),
                {
                    **row(
                        12, ctype="pingback", email="", author_url="https://other.example.net/p/1"
                    ),
                    "hook": "comment_post",
                },
            )
            wait_until(
                lambda: tuple(counts() or ()) == (1, 1, 1, 1),
                60,
                "comment, author reply and pingback counted",
                worker,
            )
            await deliver(wp_webhooks("update_comment", row(10, approved="spam")))
            # The spam comment leaves the counts, and so does the reply that hung under it.
            wait_until(
                lambda: tuple(counts() or ()) == (0, 0, 1, 0), 60, "spam flip applied", worker
            )
        # the real output messages, the deleted thread among them, fit the shipped schemas (the
        # windows stay: the pingback still counts in them)
        seen = assert_valid_outputs(output_messages(broker, site))
        assert seen[("engagement.threads", True)] >= 1 and seen[("engagement.windows", False)] >= 1
    finally:
        await client.close()
        engine.dispose()
