{{/* Names, labels and checks shared by the templates. */}}

{{/*
The prefix of every object's name: the release name, with the chart name appended unless the
release name already contains it. Cluster-scoped objects carry it too, so two releases (or a
release next to the kubectl install, whose prefix is `k0smotron-`) never share one.
*/}}
{{- define "k0smotron.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "k0smotron.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "k0smotron.labels" -}}
{{ include "k0smotron.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "k0smotron.serviceAccountName" -}}
{{- printf "%s-manager" (include "k0smotron.fullname" .) -}}
{{- end -}}

{{- define "k0smotron.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The port of metrics.address (`host:port` or `:port`). */}}
{{- define "k0smotron.metricsPort" -}}
{{- $port := splitList ":" (toString .Values.metrics.address) | last -}}
{{- if not (regexMatch "^[0-9]+$" $port) -}}
{{- fail (printf "metrics.address %q: expected host:port or :port" .Values.metrics.address) -}}
{{- end -}}
{{- $port -}}
{{- end -}}

{{/* Values the templates cannot express as a schema: refuse them at render time. */}}
{{- define "k0smotron.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicas > 1 needs leaderElection.enabled: replicas would reconcile the same objects at once" -}}
{{- end -}}
{{- if not .Values.kinds -}}
{{- fail "kinds: name at least one of standalone, capi" -}}
{{- end -}}
{{- range .Values.kinds -}}
{{- if not (has . (list "standalone" "capi")) -}}
{{- fail (printf "kinds: %q is not one of standalone, capi" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
