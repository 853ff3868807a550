// Copyright: Plinth contributors
// SPDX-License-Identifier: Apache-2.0

// Command pause is the sandbox process of a Kubernetes pod. It keeps the pod's
// namespaces alive while the pod's containers come and go, reaps the orphaned
// processes that the kernel hands to it as the namespace's first process, and
// exits cleanly when the runtime stops the sandbox with SIGINT or SIGTERM.
//
// Built static (CGO_ENABLED=0) by airgap/build_images.py into the image
// tagged as the sandbox image kubeadm expects.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is stamped by the build (-X main.version=...).
var version = "dev"

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Printf("pause %s (Plinth)\n", version)
		return
	}
	signals := make(chan os.Signal, 16)
	// A process that is PID 1 gets no default action for SIGINT and SIGTERM:
	// only an installed handler lets the runtime stop it.
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for received := range signals {
		if received == syscall.SIGCHLD {
			reapExited()
			continue
		}
		fmt.Fprintf(os.Stderr, "pause: stopping on %v\n", received)
		os.Exit(0)
	}
}

// reapExited collects every child that has exited. Signals coalesce, so one
// SIGCHLD may stand for several children: wait until none is left.
func reapExited() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
