// Command aphex-kube-api is the Kubernetes CRD API server that Aphex's tests
// run against: k8s.io/apiextensions-apiserver (the code that serves
// CustomResourceDefinitions inside kube-apiserver) with two changes from how
// that package's own command behaves, so that ordinary clients work on it:
//
//   - root discovery (/api, /apis) is served: upstream leaves it to
//     kube-aggregator, and discovery-based clients (kube-rs, kubectl) fail
//     without it;
//   - the OpenAPI v2 document (/openapi/v2) is served: kubectl's client-side
//     validation downloads it.
//
// It also stops when the process that started it is gone (even one killed
// with SIGKILL), named by APHEX_KUBE_API_PARENT_PID, so that no server
// outlives the test run that needed it.
//
// Built and started by `cargo xtask kube-api` and `cargo xtask test`
// (xtask/src/kube_api.rs); flags are the package's own.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"k8s.io/apiextensions-apiserver/pkg/apiserver"
	"k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	generatedopenapi "k8s.io/apiextensions-apiserver/pkg/generated/openapi"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/util/openapi"
	"k8s.io/client-go/kubernetes/scheme"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "aphex-kube-api: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	o := options.NewCustomResourceDefinitionsServerOptions(os.Stdout, os.Stderr)
	flags := pflag.NewFlagSet("aphex-kube-api", pflag.ContinueOnError)
	o.AddFlags(flags)
	if err := flags.Parse(os.Args[1:]); err != nil {
		return err
	}
	if err := o.ServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	if err := o.Complete(); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	config, err := o.Config()
	if err != nil {
		return err
	}
	config.GenericConfig.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(
		openapi.GetOpenAPIDefinitionsWithoutDisabledFeatures(generatedopenapi.GetOpenAPIDefinitions),
		openapinamer.NewDefinitionNamer(apiserver.Scheme, scheme.Scheme),
	)
	completed := config.Complete()
	// Complete turns discovery off (kube-aggregator serves it in a cluster).
	completed.GenericConfig.EnableDiscovery = true
	server, err := completed.New(genericapiserver.NewEmptyDelegate())
	if err != nil {
		return err
	}
	ctx := genericapiserver.SetupSignalContext()
	if parent := os.Getenv("APHEX_KUBE_API_PARENT_PID"); parent != "" {
		pid, err := strconv.Atoi(parent)
		if err != nil {
			return fmt.Errorf("APHEX_KUBE_API_PARENT_PID=%q is not a process id", parent)
		}
		ctx = stopWithParent(ctx, pid)
	}
	return server.GenericAPIServer.PrepareRun().RunWithContext(ctx)
}

// stopWithParent returns a context that ends when ctx does or when this
// process's parent is no longer parent (it died and we were re-parented).
func stopWithParent(ctx context.Context, parent int) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		for os.Getppid() == parent {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		fmt.Fprintf(os.Stderr, "aphex-kube-api: parent process %d is gone: stopping\n", parent)
		cancel()
	}()
	return ctx
}
