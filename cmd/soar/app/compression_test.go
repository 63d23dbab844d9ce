package app

import (
	"fmt"
	"testing"

	"go.temporal.io/sdk/client"
)

func TestGrpcCompressionIsOffOnlyForLoopbackOrWhenAsked(t *testing.T) {
	for _, tc := range []struct {
		mode, address string
		want          client.GrpcCompression
	}{
		{"", "127.0.0.1:7233", &client.GrpcCompressionNone{}},
		{"auto", "127.3.4.5:7233", &client.GrpcCompressionNone{}},
		{"auto", "[::1]:7233", &client.GrpcCompressionNone{}},
		{"auto", "LocalHost:7233", &client.GrpcCompressionNone{}},
		{"auto", "temporal-frontend.temporal.svc:7233", &client.GrpcCompressionGzip{}},
		{"auto", "10.0.0.7:7233", &client.GrpcCompressionGzip{}},
		{"auto", "[2001:db8::1]:7233", &client.GrpcCompressionGzip{}},
		// Not host:port: the SDK will refuse it; soar does not guess.
		{"auto", "127.0.0.1", &client.GrpcCompressionGzip{}},
		{"gzip", "127.0.0.1:7233", &client.GrpcCompressionGzip{}},
		{"none", "temporal.example:7233", &client.GrpcCompressionNone{}},
	} {
		got, err := GrpcCompression(tc.mode, tc.address)
		if err != nil {
			t.Fatalf("%q, %q: %v", tc.mode, tc.address, err)
		}
		if fmt.Sprintf("%T", got) != fmt.Sprintf("%T", tc.want) {
			t.Errorf("%q at %s: %T, want %T", tc.mode, tc.address, got, tc.want)
		}
	}
	if _, err := GrpcCompression("zstd", "127.0.0.1:7233"); err == nil {
		t.Error("an unknown mode was accepted")
	}
}
