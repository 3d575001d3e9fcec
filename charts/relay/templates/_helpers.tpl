{{/* Names, labels and the parts every Relay pod shares. */}}

{{- define "relay.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "relay.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "relay.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "relay.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "relay.secretName" -}}
{{- .Values.existingSecret | default (printf "%s-secrets" (include "relay.fullname" .)) -}}
{{- end -}}

{{- define "relay.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end -}}

{{/* Environment shared by every container: the TOML file, the data dir, secrets, extras. */}}
{{- define "relay.env" -}}
env:
  - name: RELAY_CONFIG_FILE
    value: /etc/relay/relay.toml
  - name: RELAY_DATA_DIR
    value: /var/lib/relay
  - name: RELAY_SERVER__HOST
    value: 0.0.0.0
  - name: RELAY_SERVER__PORT
    value: "8080"
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
envFrom:
  - secretRef:
      name: {{ include "relay.secretName" . }}
{{- end -}}

{{- define "relay.volumeMounts" -}}
volumeMounts:
  - name: config
    mountPath: /etc/relay
    readOnly: true
  - name: data
    mountPath: /var/lib/relay
  - name: tmp
    mountPath: /tmp
{{- end -}}

{{- define "relay.volumes" -}}
volumes:
  - name: config
    configMap:
      name: {{ include "relay.fullname" . }}-config
  - name: data
    {{- if eq .Values.mode "embedded" }}
    persistentVolumeClaim:
      claimName: {{ include "relay.fullname" . }}-data
    {{- else }}
    emptyDir: {}
    {{- end }}
  - name: tmp
    emptyDir: {}
{{- end -}}

{{/* Fail early on settings that cannot work (SPEC S10.8: SQLite only with one replica). */}}
{{- define "relay.validate" -}}
{{- if not (has .Values.mode (list "production" "embedded")) -}}
{{- fail "mode must be production or embedded" -}}
{{- end -}}
{{- if and (eq .Values.mode "production") (not .Values.existingSecret) (not (hasKey .Values.secrets "RELAY_DATABASE_URL")) (not (dig "database" "url" "" .Values.config)) -}}
{{- fail "mode production needs a PostgreSQL database: set secrets.RELAY_DATABASE_URL, config.database.url or existingSecret (or use mode: embedded for SQLite)" -}}
{{- end -}}
{{- end -}}
