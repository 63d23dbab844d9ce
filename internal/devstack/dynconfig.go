package devstack

import (
	"context"
	"sync/atomic"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/server/common/dynamicconfig"
	"google.golang.org/grpc"
)

// searchAttributesFreshFor is how long after a search attribute is added
// the server reads search attributes from the database on every use. Its
// caches refresh by themselves within a minute (the search attribute
// manager's 60 s, the namespace registry's 10 s), so after that they hold
// the new attributes.
const searchAttributesFreshFor = 90 * time.Second

// dynamicConfig is the embedded server's dynamic configuration: fixed values,
// and ForceSearchAttributesCacheRefreshOnRead only while a search attribute
// added through the operator API may be missing from the server's caches.
//
// Forcing it always, as Temporal's own development server does, costs every
// start, signal and workflow task completion several database reads (about a
// tenth of all CPU in BenchmarkAlertToQuarantine); Temporal says not to turn
// it on in production, and a production cluster does not.
type dynamicConfig struct {
	static dynamicconfig.StaticClient
	// forceUntil is the UnixNano until which the cache refresh is forced.
	forceUntil atomic.Int64
}

var forcedRefresh = []dynamicconfig.ConstrainedValue{{Value: true}}

// GetValue implements dynamicconfig.Client. Temporal calls it very often; it
// only reads memory.
func (c *dynamicConfig) GetValue(key dynamicconfig.Key) []dynamicconfig.ConstrainedValue {
	if key == dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key() {
		if time.Now().UnixNano() < c.forceUntil.Load() {
			return forcedRefresh
		}
		return nil
	}
	return c.static.GetValue(key)
}

// watchSearchAttributes is a frontend interceptor that forces fresh search
// attributes for searchAttributesFreshFor from the moment one is added, so a
// workflow started right after its attributes were registered is not refused
// for using an attribute the server's cache does not know yet.
func (c *dynamicConfig) watchSearchAttributes(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if _, ok := req.(*operatorservice.AddSearchAttributesRequest); ok {
		c.forceFor(searchAttributesFreshFor)
		defer c.forceFor(searchAttributesFreshFor)
	}
	return handler(ctx, req)
}

// forceFor forces the refresh for d from now, or longer if already forced.
func (c *dynamicConfig) forceFor(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		cur := c.forceUntil.Load()
		if cur >= until || c.forceUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}
