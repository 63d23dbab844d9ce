package kube

import "time"

// SpendBudget takes n requests from the client's rate limit, as n
// requests sent at once would.
func (c *Client) SpendBudget(n int) bool { return c.limit.lim.AllowN(time.Now(), n) }

// Pressed exposes pressed to the tests of package kube_test.
func (c *Client) Pressed() bool { return c.pressed() }
