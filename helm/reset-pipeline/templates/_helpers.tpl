{{/* The chart name, overridable. */}}
{{- define "reset-pipeline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full resource name: release and chart, without repeating the chart name. */}}
{{- define "reset-pipeline.fullname" -}}
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

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "reset-pipeline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "reset-pipeline.labels" -}}
helm.sh/chart: {{ include "reset-pipeline.chart" . }}
{{ include "reset-pipeline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the pods; they never change between upgrades. */}}
{{- define "reset-pipeline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "reset-pipeline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "reset-pipeline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "reset-pipeline.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding RESET_CLIENT_ID and RESET_CLIENT_SECRET. */}}
{{- define "reset-pipeline.secretName" -}}
{{- default (include "reset-pipeline.fullname" .) .Values.credentials.existingSecret }}
{{- end }}

{{/* Where the ConfigMap is mounted; the binary reads config.yaml from here. */}}
{{- define "reset-pipeline.configDir" -}}
/etc/reset-pipeline
{{- end }}

{{/* Where the private CA for RESET's TLS is mounted, when there is one. */}}
{{- define "reset-pipeline.caDir" -}}
/etc/reset-pipeline-ca
{{- end }}

{{/*
The pipeline's config file: the values' `config`, with the listener on the
metrics port and the mounted monitor file when the chart carries monitors.
*/}}
{{- define "reset-pipeline.configFile" -}}
{{- $config := deepCopy .Values.config }}
{{- $_ := set $config "http" (dict "listen" (printf "0.0.0.0:%d" (int .Values.metrics.port))) }}
{{- if .Values.monitors }}
{{- $monitors := deepCopy (default dict $config.monitors) }}
{{- $_ := set $monitors "file" "monitors.yaml" }}
{{- $_ := set $config "monitors" $monitors }}
{{- end }}
{{- if or .Values.resetCa.secretName .Values.resetCa.configMapName }}
{{- $reset := deepCopy (default dict $config.reset) }}
{{- $_ := set $reset "ca_file" (printf "%s/%s" (include "reset-pipeline.caDir" .) .Values.resetCa.key) }}
{{- $_ := set $config "reset" $reset }}
{{- end }}
{{- if not $config.dead_letter }}
{{- $_ := unset $config "dead_letter" }}
{{- end }}
{{- toYaml $config }}
{{- end }}
