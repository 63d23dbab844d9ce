// Package devstack runs soar's outside systems inside one process for
// 'soar dev' and for tests: a NATS server with JetStream, a Temporal server on
// SQLite with its Web UI, and optionally a kube-apiserver with etcd. Production
// runs soar against real clusters of each instead.
package devstack
