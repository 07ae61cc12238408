{{/*
Chart name, bounded to the 63 characters of a DNS label.
*/}}
{{- define "falco-risk.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full object name: the release name, plus the chart name unless the release already holds it.
*/}}
{{- define "falco-risk.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of the headless Service; the suffix is kept whole when the name is shortened.
*/}}
{{- define "falco-risk.headlessName" -}}
{{- printf "%s-headless" (include "falco-risk.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "falco-risk.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "falco-risk.selectorLabels" -}}
app.kubernetes.io/name: {{ include "falco-risk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "falco-risk.labels" -}}
helm.sh/chart: {{ include "falco-risk.chart" . }}
{{ include "falco-risk.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end }}

{{- define "falco-risk.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "falco-risk.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: a digest pins it exactly and wins over the tag.
*/}}
{{- define "falco-risk.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Where the pod mounts what the chart gives it.
*/}}
{{- define "falco-risk.configDir" -}}/etc/falco-risk{{- end }}
{{- define "falco-risk.catalogDir" -}}/etc/falco-risk/catalog{{- end }}
{{- define "falco-risk.tlsDir" -}}/etc/falco-risk/tls{{- end }}
{{- define "falco-risk.forwardCADir" -}}/etc/falco-risk/forward-ca{{- end }}

{{/*
Name of the ConfigMap holding the catalog, or nothing when the seed detection is used.
*/}}
{{- define "falco-risk.catalogConfigMap" -}}
{{- if .Values.catalog.configMap }}
{{- .Values.catalog.configMap }}
{{- else if .Values.catalog.inline }}
{{- printf "%s-catalog" (include "falco-risk.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{/*
True (non-empty) when falco-risk forwards to the collector agent on its own node.
*/}}
{{- define "falco-risk.forwardToNode" -}}
{{- if and (eq .Values.mode "daemonset") (not .Values.forward.endpoint) }}true{{- end }}
{{- end }}

{{/*
The configuration file. Keys follow falco-risk's flat configuration; the forward endpoint is
left out when it depends on the node's IP, which only the environment can carry.
*/}}
{{- define "falco-risk.configFile" -}}
grpc_endpoint: {{ printf "0.0.0.0:%d" (int .Values.ports.grpc) | quote }}
http_endpoint: {{ printf "0.0.0.0:%d" (int .Values.ports.http) | quote }}
{{- if .Values.tls.enabled }}
tls_cert_file: {{ printf "%s/tls.crt" (include "falco-risk.tlsDir" .) | quote }}
tls_key_file: {{ printf "%s/tls.key" (include "falco-risk.tlsDir" .) | quote }}
{{- if .Values.tls.requireClientCert }}
tls_client_ca_file: {{ printf "%s/ca.crt" (include "falco-risk.tlsDir" .) | quote }}
{{- end }}
{{- else }}
allow_insecure_listen: true
{{- end }}
{{- if not (include "falco-risk.forwardToNode" .) }}
forward_endpoint: {{ .Values.forward.endpoint | quote }}
{{- end }}
forward_timeout: {{ .Values.forward.timeout }}
forward_compression: {{ .Values.forward.compression | quote }}
forward_max_request_size: {{ int64 .Values.forward.maxRequestSize }}
{{- if .Values.forward.tls.caSecretName }}
forward_tls_ca_file: {{ printf "%s/ca.crt" (include "falco-risk.forwardCADir" .) | quote }}
{{- end }}
max_request_size: {{ int64 .Values.config.maxRequestSize }}
max_in_flight: {{ int .Values.config.maxInFlight }}
drain_timeout: {{ .Values.config.drainTimeout }}
{{- if include "falco-risk.catalogConfigMap" . }}
catalog:
  - {{ include "falco-risk.catalogDir" . | quote }}
{{- end }}
log_level: {{ .Values.config.logLevel | quote }}
log_format: {{ .Values.config.logFormat | quote }}
{{- with .Values.config.extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Refuse value combinations that would render a broken or misleading release.
*/}}
{{- define "falco-risk.validate" -}}
{{- $mode := .Values.mode }}
{{- if not (has $mode (list "daemonset" "deployment")) }}
{{- fail (printf "mode must be daemonset or deployment, not %q" $mode) }}
{{- end }}
{{- if not .Values.image.repository }}
{{- fail "image.repository must be set" }}
{{- end }}
{{- if eq (int .Values.ports.grpc) (int .Values.ports.http) }}
{{- fail (printf "ports.grpc and ports.http must differ, both are %d" (int .Values.ports.grpc)) }}
{{- end }}
{{- if and (eq $mode "deployment") (not .Values.forward.endpoint) }}
{{- fail "forward.endpoint is required in deployment mode: set it to the collector gateway's return receiver, e.g. <release>-splunk-otel-collector.<namespace>.svc.cluster.local:4319" }}
{{- end }}
{{- if and .Values.catalog.inline .Values.catalog.configMap }}
{{- fail "catalog.inline and catalog.configMap are exclusive: set one of them" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName, a kubernetes.io/tls Secret with tls.crt and tls.key" }}
{{- end }}
{{- if and .Values.tls.requireClientCert (not .Values.tls.enabled) }}
{{- fail "tls.requireClientCert needs tls.enabled" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (eq $mode "daemonset") }}
{{- fail "autoscaling.enabled applies to deployment mode only; a DaemonSet runs one pod per node" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) exceeds autoscaling.maxReplicas (%d)" (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (not .Values.autoscaling.targetCPUUtilizationPercentage) (not .Values.autoscaling.targetMemoryUtilizationPercentage) }}
{{- fail "autoscaling.enabled needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" }}
{{- end }}
{{- $requests := default dict .Values.resources.requests }}
{{- if and .Values.autoscaling.enabled .Values.autoscaling.targetCPUUtilizationPercentage (not $requests.cpu) }}
{{- fail "autoscaling.targetCPUUtilizationPercentage needs resources.requests.cpu: utilization is measured against the request" }}
{{- end }}
{{- if and .Values.autoscaling.enabled .Values.autoscaling.targetMemoryUtilizationPercentage (not $requests.memory) }}
{{- fail "autoscaling.targetMemoryUtilizationPercentage needs resources.requests.memory: utilization is measured against the request" }}
{{- end }}
{{- if and .Values.hostPort.enabled (eq $mode "deployment") }}
{{- fail "hostPort.enabled applies to daemonset mode only" }}
{{- end }}
{{- if and .Values.hostPort.enabled (has (int .Values.hostPort.port) (list 4317 4318 4320 (int .Values.forward.returnPort))) }}
{{- fail (printf "hostPort.port %d is held by the collector agent on the host network; pick another, e.g. 14317" (int .Values.hostPort.port)) }}
{{- end }}
{{- if lt (float64 .Values.terminationGracePeriodSeconds) (addf .Values.preStopDelaySeconds .Values.config.drainTimeout) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must cover preStopDelaySeconds (%v) plus config.drainTimeout (%v), or falco-risk is killed mid-drain" .Values.terminationGracePeriodSeconds .Values.preStopDelaySeconds .Values.config.drainTimeout) }}
{{- end }}
{{- $owned := list "grpc_endpoint" "http_endpoint" "allow_insecure_listen" "tls_cert_file" "tls_key_file" "tls_client_ca_file" "forward_endpoint" "forward_timeout" "forward_compression" "forward_max_request_size" "forward_tls_ca_file" "max_request_size" "max_in_flight" "drain_timeout" "catalog" "log_level" "log_format" }}
{{- range $key, $_ := .Values.config.extra }}
{{- if has $key $owned }}
{{- fail (printf "config.extra.%s is set by the chart; use the chart's own value for it (see the README's values table)" $key) }}
{{- end }}
{{- end }}
{{- end }}
