# The tcpclose-trace image, for people who build with Docker (BuildKit).
# `make image` builds the same image without a container engine, and
# reproducibly; this file uses the same build flags, base files, command, user,
# port and labels (tools/internal/image checks that the two agree).
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg CREATED=$(TZ=UTC git log -1 --format=%cd --date=format-local:%FT%TZ) \
#     -t tcpclose-trace .

FROM golang:1.26 AS build
ARG VERSION=dev
# Set by BuildKit from --platform; the Go toolchain cross-compiles.
ARG TARGETARCH=amd64
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux GOARCH=${TARGETARCH} go build -trimpath -buildvcs=false \
	-ldflags "-s -w -buildid= -X main.version=${VERSION}" -o /rootfs/tcpclose-trace ./cmd/tcpclose-trace
RUN mkdir -p /rootfs/etc && mkdir -m 1777 /rootfs/tmp && \
	install -m 0644 tools/internal/image/rootfs/etc/passwd tools/internal/image/rootfs/etc/group /rootfs/etc/

FROM scratch
ARG VERSION=dev
ARG REVISION=
ARG CREATED=
COPY --from=build /rootfs/ /
LABEL org.opencontainers.image.title="tcpclose-trace" \
	org.opencontainers.image.description="Names the process that closed a TCP connection in a way that lost data (eBPF)" \
	org.opencontainers.image.source="https://github.com/tcpclose-trace/tcpclose-trace" \
	org.opencontainers.image.version="${VERSION}" \
	org.opencontainers.image.revision="${REVISION}" \
	org.opencontainers.image.licenses="MIT" \
	org.opencontainers.image.created="${CREATED}"
# Attaching BPF programs needs root (or CAP_BPF and CAP_PERFMON).
USER 0:0
EXPOSE 19180/tcp
ENTRYPOINT ["/tcpclose-trace"]
CMD ["serve"]
