package fanout

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ensureStreams creates or updates the streams the hub uses. Every gateway calls it at
// start; the calls are idempotent.
func ensureStreams(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              chatStream,
		Description:       "liveroom chat: per-room history, re-published to lr.ev.<room>.chat",
		Subjects:          []string{chatSubjectAll},
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: cfg.ChatHistory,
		Discard:           jetstream.DiscardOld,
		Storage:           jetstream.FileStorage,
		Replicas:          cfg.Replicas,
		Duplicates:        cfg.ChatDedupeWindow,
		AllowDirect:       true, // chat history reads: batched direct get (chathistory.go)
		RePublish: &jetstream.RePublish{
			Source:      chatSubjectAll,
			Destination: chatRepublishDst,
		},
	})
	if err != nil {
		return fmt.Errorf("fanout: stream %s: %w", chatStream, err)
	}
	return nil
}
