#!/bin/sh
# Creates Fordring's Kafka topics, each with its dead-letter sibling (<topic>.dlq). Idempotent.
#
# The compose stack runs it once (the topic-init service); against any other cluster run it
# where Kafka's CLI tools are, e.g.
#   BOOTSTRAP_SERVERS=broker-0:9092 REPLICATION_FACTOR=3 MIN_INSYNC_REPLICAS=2 PARTITIONS=24 \
#     ./create-topics.sh
#
# Keys are invoice ids, so one invoice's events keep their order in one partition; the partition
# count is the upper bound on consumer replicas per group. Raising it later re-maps keys to
# partitions (ordering breaks for in-flight invoices), so size it for growth up front.
set -eu

BOOTSTRAP_SERVERS="${BOOTSTRAP_SERVERS:-localhost:9092}"
TOPICS_TOOL="${TOPICS_TOOL:-/opt/kafka/bin/kafka-topics.sh}"
TOPIC_PREFIX="${TOPIC_PREFIX:-}"            # the services' FORDRING_TOPIC_PREFIX
PARTITIONS="${PARTITIONS:-12}"
DLQ_PARTITIONS="${DLQ_PARTITIONS:-3}"
REPLICATION_FACTOR="${REPLICATION_FACTOR:-1}"
MIN_INSYNC_REPLICAS="${MIN_INSYNC_REPLICAS:-1}"  # producers use acks=all: RF 3 + min ISR 2 in production
RETENTION_MS="${RETENTION_MS:-604800000}"   # 7 days
DLQ_RETENTION_MS="${DLQ_RETENTION_MS:-2592000000}"  # 30 days: time to look, fix and replay

# Owner.entity.version (ARCHITECTURE §3). renderer and dispatcher topics are created ahead of
# their services so a new service never waits on a topic.
TOPICS="
fordring.ledger.invoice.v1
fordring.ledger.customer.v1
fordring.ledger.tenant.v1
fordring.matcher.payment.v1
fordring.dunning.action.v1
fordring.renderer.document.v1
fordring.dispatcher.delivery.v1
"

create() {
  "$TOPICS_TOOL" --bootstrap-server "$BOOTSTRAP_SERVERS" --create --if-not-exists \
    --topic "$1" --partitions "$2" --replication-factor "$REPLICATION_FACTOR" \
    --config min.insync.replicas="$MIN_INSYNC_REPLICAS" \
    --config retention.ms="$3"
}

for topic in $TOPICS; do
  create "${TOPIC_PREFIX}${topic}" "$PARTITIONS" "$RETENTION_MS"
  create "${TOPIC_PREFIX}${topic}.dlq" "$DLQ_PARTITIONS" "$DLQ_RETENTION_MS"
done

"$TOPICS_TOOL" --bootstrap-server "$BOOTSTRAP_SERVERS" --list | grep "^${TOPIC_PREFIX}fordring\." || true
