#!/usr/bin/env bash
# Registers the Kubernetes stack `movielens-k8s` on the ZenML server the client is logged in to
# (the team's: `zenml login http://<host>:8237`), reusing the team stack's S3 artifact store
# and MLflow tracker, and adds a Kubernetes orchestrator, a GPU step operator, a container
# registry and an image builder. Idempotent: components that exist are left as they are.
#
#   K8S_CONTEXT=my-cluster REGISTRY_URI=registry.example.com/movielens stacks/kubernetes.sh
#
# Environment:
#   K8S_CONTEXT      the kubectl context of the cluster (required)
#   K8S_NAMESPACE    where the pods run (default movielens)
#   REGISTRY_URI     the container registry the image is pushed to (required)
#   ARTIFACT_STORE   the team stack's S3 artifact store (default team_artifacts)
#   TRACKER          the team stack's MLflow experiment tracker (default team_mlflow)
#
# Then: zenml stack set movielens-k8s
#       zenml pipeline run pipelines.training.training_pipeline -c configs/kubernetes.yaml
# (the image is built and pushed at the first run; `zenml integration install kubernetes s3 mlflow`
# puts the client-side packages in place first).
set -euo pipefail

: "${K8S_CONTEXT:?set K8S_CONTEXT to the kubectl context of the cluster}"
: "${REGISTRY_URI:?set REGISTRY_URI to the registry the pipeline image is pushed to}"
NAMESPACE="${K8S_NAMESPACE:-movielens}"
ARTIFACT_STORE="${ARTIFACT_STORE:-team_artifacts}"
TRACKER="${TRACKER:-team_mlflow}"

exists() { zenml "$1" describe "$2" >/dev/null 2>&1; }

exists orchestrator k8s_orchestrator || zenml orchestrator register k8s_orchestrator --flavor=kubernetes \
  --kubernetes_context="$K8S_CONTEXT" --kubernetes_namespace="$NAMESPACE"
# Multi-pod jobs (pod_count > 1) of the step operator run command steps (torchrun across pods).
exists step-operator k8s_gpu || zenml step-operator register k8s_gpu --flavor=kubernetes \
  --kubernetes_context="$K8S_CONTEXT" --kubernetes_namespace="$NAMESPACE"
exists container-registry team_registry || zenml container-registry register team_registry --flavor=default \
  --uri="$REGISTRY_URI"
exists image-builder local_docker || zenml image-builder register local_docker --flavor=local
exists stack movielens-k8s || zenml stack register movielens-k8s -o k8s_orchestrator -a "$ARTIFACT_STORE" \
  -e "$TRACKER" -s k8s_gpu -c team_registry -i local_docker
zenml stack describe movielens-k8s
