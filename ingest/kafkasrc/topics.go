package kafkasrc

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kadm"
)

// CheckTopics returns an error naming every topic that does not exist, so a
// typo in the configuration stops the service at start with a clear message
// instead of a consumer that waits forever or writes that retry forever.
// It uses franz-go's admin client: kafka-go has no metadata call that does
// not risk creating the topic on brokers with auto-creation on.
func CheckTopics(ctx context.Context, c Cluster, topics ...string) error {
	details, err := listTopics(ctx, c, topics)
	if err != nil {
		return err
	}
	var missing []string
	for _, t := range topics {
		if d, ok := details[t]; !ok || d.Err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	errs := make([]error, len(missing))
	for i, t := range missing {
		errs[i] = fmt.Errorf("kafka: topic %q does not exist", t)
	}
	return errors.Join(errs...)
}

// Partitions returns how many partitions topic has.
func Partitions(ctx context.Context, c Cluster, topic string) (int, error) {
	details, err := listTopics(ctx, c, []string{topic})
	if err != nil {
		return 0, err
	}
	d, ok := details[topic]
	if !ok || d.Err != nil || len(d.Partitions) == 0 {
		return 0, fmt.Errorf("kafka: topic %q does not exist", topic)
	}
	return len(d.Partitions), nil
}

func listTopics(ctx context.Context, c Cluster, topics []string) (kadm.TopicDetails, error) {
	cl, err := c.franz()
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	details, err := kadm.NewClient(cl).ListTopics(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("kafka %v: list topics: %w", c.Brokers, err)
	}
	return details, nil
}
