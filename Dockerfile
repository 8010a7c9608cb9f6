# syntax=docker/dockerfile:1
#
# drbot's image: a static, non-root binary on distroless, read-only-root friendly.
#
#   docker build \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg COMMIT=$(git rev-parse HEAD) \
#     --build-arg DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) \
#     [--build-arg TERRAFORM_VERSION=1.9.8] \
#     -t registry.example.com/drbot:$(git describe --tags --always) .
#
# TERRAFORM_VERSION (empty by default) adds /usr/local/bin/terraform, copied from the
# hashicorp/terraform image of that version, for targets with `cluster.provider: terraform`.
# Without it the image has no terraform and those targets fail at the terraform step.
#
# The Go build line below is what test/manifests runs (with the same flags) on every `make test`.

# Global ARGs: usable in FROM lines.
ARG GO_VERSION=1.26.8
ARG TERRAFORM_VERSION=
# gcr.io/distroless/static-debian12:nonroot, pinned by digest (distroless has no version tags).
# To update: crane digest gcr.io/distroless/static-debian12:nonroot
ARG DISTROLESS_DIGEST=sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab

# --- build: the Go toolchain on the build host's platform, cross-compiling to the target's.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Set by BuildKit from --platform (empty with the legacy builder: the host's platform).
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" -o /out/drbot ./cmd/drbot
# An empty directory for the image without terraform, and the state directory owned by nonroot.
RUN mkdir -p /out/terraform /out/state && chown 65532:65532 /out/state

# --- terraform, optional: `terraform` (empty) unless TERRAFORM_VERSION is set, then `terraform-image`.
# The default tag below only keeps the unused stage's reference valid; BuildKit skips stages nothing uses.
FROM hashicorp/terraform:${TERRAFORM_VERSION:-1.9.8} AS terraform-release

FROM scratch AS terraform
COPY --from=build /out/terraform/ /

FROM scratch AS terraform-image
COPY --from=terraform-release /bin/terraform /terraform

FROM terraform${TERRAFORM_VERSION:+-image} AS terraform-selected

# --- final: distroless static (CA certificates, tzdata, /etc/passwd with nonroot 65532), no shell.
FROM gcr.io/distroless/static-debian12:nonroot@${DISTROLESS_DIGEST}
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
ARG TERRAFORM_VERSION=
LABEL org.opencontainers.image.title="drbot" \
      org.opencontainers.image.description="Slack ChatOps bot that recovers a lost Amazon EKS cluster into a DR region" \
      org.opencontainers.image.source="https://github.com/drbot/drbot" \
      org.opencontainers.image.url="https://github.com/drbot/drbot" \
      org.opencontainers.image.documentation="https://github.com/drbot/drbot#deploying-drbot" \
      org.opencontainers.image.vendor="drbot" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${DATE}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot" \
      io.drbot.terraform.version="${TERRAFORM_VERSION}"
COPY --from=build /out/drbot /usr/local/bin/drbot
COPY --from=terraform-selected / /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/state /var/lib/drbot
# Terraform and the Go runtime write only under HOME and /tmp (an emptyDir in manifests/).
ENV HOME=/tmp \
    DRBOT_CONFIG=/etc/drbot/drbot.yaml
USER 65532:65532
WORKDIR /var/lib/drbot
# The bbolt state lives on a mounted volume; the root filesystem can be read-only.
VOLUME ["/var/lib/drbot"]
# /healthz and /readyz (drbot serve -listen, default :8080).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/drbot"]
CMD ["serve"]
