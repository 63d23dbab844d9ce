{{/* The image, by digest when one is set. */}}
{{- define "soar.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{/* Labels of every object: deploy/'s, and Helm's own. */}}
{{- define "soar.labels" -}}
app.kubernetes.io/name: soar
app.kubernetes.io/part-of: soar
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The settings every process reads, and the secrets they share. */}}
{{- define "soar.envFrom" -}}
- configMapRef:
    name: soar-config
{{- end -}}

{{- define "soar.temporalAPIKey" -}}
- name: SOAR_TEMPORAL_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.temporal.apiKeySecret }}
      key: api-key
      optional: true
{{- end -}}

{{- define "soar.signingKeysFile" -}}
- name: SOAR_SIGNING_KEYS_FILE
  value: /etc/soar/signing/keys
{{- end -}}

{{/* Optional secret env vars: name, secret, key. */}}
{{- define "soar.secretEnv" -}}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ index . 1 }}
      key: {{ index . 2 }}
      optional: true
{{- end -}}

{{/* TLS and credentials files for Temporal and NATS, when configured. */}}
{{- define "soar.connectionEnv" -}}
{{- $nats := index . 1 -}}
{{- with (index . 0).Values -}}
{{- if .temporal.tls.enabled }}
- name: SOAR_TEMPORAL_TLS
  value: "true"
{{- end }}
{{- if .temporal.tls.secret }}
- name: SOAR_TEMPORAL_TLS_CA
  value: /etc/soar/temporal-tls/ca.crt
- name: SOAR_TEMPORAL_TLS_CERT
  value: /etc/soar/temporal-tls/tls.crt
- name: SOAR_TEMPORAL_TLS_KEY
  value: /etc/soar/temporal-tls/tls.key
{{- end }}
{{- if .temporal.tls.serverName }}
- name: SOAR_TEMPORAL_TLS_SERVER_NAME
  value: {{ .temporal.tls.serverName | quote }}
{{- end }}
{{- if and $nats .nats.credsSecret }}
- name: SOAR_NATS_CREDS
  value: /etc/soar/nats-creds/creds
{{- end }}
{{- if and $nats .nats.tls.secret }}
- name: SOAR_NATS_TLS_CA
  value: /etc/soar/nats-tls/ca.crt
- name: SOAR_NATS_TLS_CERT
  value: /etc/soar/nats-tls/tls.crt
- name: SOAR_NATS_TLS_KEY
  value: /etc/soar/nats-tls/tls.key
{{- end }}
{{- end -}}
{{- end -}}

{{- define "soar.connectionMounts" -}}
{{- $nats := index . 1 -}}
{{- with (index . 0).Values -}}
{{- if .temporal.tls.secret }}
- name: temporal-tls
  mountPath: /etc/soar/temporal-tls
  readOnly: true
{{- end }}
{{- if and $nats .nats.credsSecret }}
- name: nats-creds
  mountPath: /etc/soar/nats-creds
  readOnly: true
{{- end }}
{{- if and $nats .nats.tls.secret }}
- name: nats-tls
  mountPath: /etc/soar/nats-tls
  readOnly: true
{{- end }}
{{- end -}}
{{- end -}}

{{- define "soar.connectionVolumes" -}}
{{- $nats := index . 1 -}}
{{- with (index . 0).Values -}}
{{- if .temporal.tls.secret }}
- name: temporal-tls
  secret:
    secretName: {{ .temporal.tls.secret }}
{{- end }}
{{- if and $nats .nats.credsSecret }}
- name: nats-creds
  secret:
    secretName: {{ .nats.credsSecret }}
    items:
      - key: creds
        path: creds
{{- end }}
{{- if and $nats .nats.tls.secret }}
- name: nats-tls
  secret:
    secretName: {{ .nats.tls.secret }}
{{- end }}
{{- end -}}
{{- end -}}

{{- define "soar.signingVolume" -}}
- name: signing-keys
  secret:
    secretName: {{ .Values.secrets.signingKeys }}
    items:
      - key: keys
        path: keys
    optional: false
{{- end -}}

{{- define "soar.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 2
  failureThreshold: 30
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
{{- end -}}

{{- define "soar.podSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "soar.containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end -}}

{{/* Scheduling and pull secrets: ctx and the process's values. */}}
{{- define "soar.scheduling" -}}
{{- $v := index . 1 -}}
{{- with (index . 0).Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
A cluster-wide file of deploy/ (files/, copied by make chart), for the
release's namespace. deploy/ names soar's namespace, "soar", where its
RBAC binds soar's ServiceAccounts, where its admission policies recognise
soar-worker (system:serviceaccount:soar:soar-worker), keep their lists
(soar-locks, soar-deploy-control, soar-baseline) and protect soar itself.
In another namespace each of those places names that one instead, and the
protected namespaces gain it; NATS's namespace in networkpolicy.yaml is
networkPolicy.natsNamespace. In "soar" (and NATS there) the file is
deploy/'s, byte for byte. Every place that means the namespace is one of
the patterns below: TestChartRendersForItsNamespace fails on a new one of
the forms it knows, and TestChartInstallsIntoAnyNamespace on a policy
that no longer holds in another namespace.
*/}}
{{- define "soar.clusterFile" -}}
{{- $root := index . 0 -}}
{{- $body := $root.Files.Get (printf "files/%s" (index . 1)) -}}
{{- $ns := $root.Release.Namespace -}}
{{- if ne $ns "soar" -}}
{{- $body = regexReplaceAll "(?m)^(\\s*)namespace: soar$" $body (printf "${1}namespace: %s" $ns) -}}
{{- $body = replace "system:serviceaccount:soar:" (printf "system:serviceaccount:%s:" $ns) $body -}}
{{- $body = replace "request.namespace == \"soar\"" (printf "request.namespace == %q" $ns) $body -}}
{{- $body = replace "\"soar\", \"soar-system\"," (printf "\"soar\", \"soar-system\", %q," $ns) $body -}}
{{- $body = replace "\"soar/\" + request.name" (printf "%q + request.name" (printf "%s/" $ns)) $body -}}
{{- $body = replace "ConfigMap soar/soar-baseline" (printf "ConfigMap %s/soar-baseline" $ns) $body -}}
{{- end -}}
{{- $nats := $root.Values.networkPolicy.natsNamespace | default $ns -}}
{{- if ne $nats "soar" -}}
{{- $body = replace "kubernetes.io/metadata.name: soar" (printf "kubernetes.io/metadata.name: %s" $nats) $body -}}
{{- end -}}
{{- $body -}}
{{- end -}}

{{/*
The console's settings for soar serve (serve.console), as the variables of
its --console-* flags; its secrets from serve.console.secret: the OIDC
client's, and the key the replicas share for sessions and forms.
*/}}
{{- define "soar.consoleEnv" -}}
{{- with .Values.serve.console -}}
{{- if eq .auth "oidc" -}}
{{- if not (and .oidc.issuer .oidc.clientID .oidc.redirectURL) -}}
{{- fail "serve.console.auth oidc needs serve.console.oidc.issuer, .clientID and .redirectURL" -}}
{{- end -}}
{{- else if eq .auth "proxy" -}}
{{- if not .proxyFrom -}}
{{- fail "serve.console.auth proxy needs serve.console.proxyFrom: the proxy's addresses, whose identity headers alone are believed" -}}
{{- end -}}
{{- end -}}
{{- if .auth }}
- name: SOAR_CONSOLE_AUTH
  value: {{ .auth | quote }}
- name: SOAR_CONSOLE_DOWNLOADS_PER_MINUTE
  value: {{ .downloadsPerMinute | quote }}
{{- range $name, $v := dict "SOAR_CONSOLE_GROUP_MAP" .groupMap "SOAR_CONSOLE_PEOPLE" .people "SOAR_CONSOLE_VIEWERS" (join "," .viewers) }}
{{- if $v }}
- name: {{ $name }}
  value: {{ $v | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq .auth "oidc" }}
{{- range $name, $v := dict "SOAR_CONSOLE_OIDC_ISSUER" .oidc.issuer "SOAR_CONSOLE_OIDC_CLIENT_ID" .oidc.clientID "SOAR_CONSOLE_OIDC_REDIRECT_URL" .oidc.redirectURL "SOAR_CONSOLE_OIDC_USER_CLAIM" .oidc.userClaim "SOAR_CONSOLE_OIDC_GROUPS_CLAIM" .oidc.groupsClaim }}
{{- if $v }}
- name: {{ $name }}
  value: {{ $v | quote }}
{{- end }}
{{- end }}
- name: SOAR_CONSOLE_OIDC_CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: oidc-client-secret
{{- else if eq .auth "proxy" }}
- name: SOAR_CONSOLE_PROXY_FROM
  value: {{ join "," .proxyFrom | quote }}
{{- end }}
{{- if .auth }}
- name: SOAR_CONSOLE_SESSION_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: session-key
{{- end }}
{{- end -}}
{{- end -}}
