# syntax=docker/dockerfile:1
# Multi-stage build of a static, non-root drbot image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" \
      -o /out/drbot ./cmd/drbot

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/drbot /usr/local/bin/drbot
USER 65532:65532
# State lives on a mounted volume; the root filesystem can be read-only.
VOLUME ["/var/lib/drbot"]
ENTRYPOINT ["/usr/local/bin/drbot"]
CMD ["serve"]
