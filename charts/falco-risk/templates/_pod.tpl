{{/*
The pod template shared by the DaemonSet and the Deployment.
*/}}
{{- define "falco-risk.podTemplate" -}}
metadata:
  annotations:
    checksum/config: {{ include "falco-risk.configFile" . | sha256sum }}
    {{- if .Values.catalog.inline }}
    checksum/catalog: {{ toYaml .Values.catalog.inline | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "falco-risk.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "falco-risk.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ int .Values.terminationGracePeriodSeconds }}
  containers:
    - name: falco-risk
      image: {{ include "falco-risk.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - --config
        - {{ printf "%s/config.yaml" (include "falco-risk.configDir" .) }}
      ports:
        - name: otlp-grpc
          containerPort: {{ int .Values.ports.grpc }}
          protocol: TCP
          {{- if .Values.hostPort.enabled }}
          hostPort: {{ int .Values.hostPort.port }}
          {{- end }}
        - name: otlp-http
          containerPort: {{ int .Values.ports.http }}
          protocol: TCP
      {{- if or (include "falco-risk.forwardToNode" .) .Values.extraEnv }}
      env:
        {{- if include "falco-risk.forwardToNode" . }}
        - name: NODE_IP
          valueFrom:
            fieldRef:
              fieldPath: status.hostIP
        # Kubernetes expands $(NODE_IP) here; the environment wins over the file.
        - name: FALCO_RISK_FORWARD_ENDPOINT
          value: {{ printf "$(NODE_IP):%d" (int .Values.forward.returnPort) | quote }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      {{- $scheme := ternary "HTTPS" "HTTP" .Values.tls.enabled }}
      startupProbe:
        httpGet:
          path: /healthz
          port: otlp-http
          scheme: {{ $scheme }}
        {{- toYaml .Values.startupProbe | nindent 8 }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: otlp-http
          scheme: {{ $scheme }}
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: otlp-http
          scheme: {{ $scheme }}
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      {{- if gt (int .Values.preStopDelaySeconds) 0 }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", {{ int .Values.preStopDelaySeconds | quote }}]
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: {{ include "falco-risk.configDir" . }}/config.yaml
          subPath: config.yaml
          readOnly: true
        {{- if include "falco-risk.catalogConfigMap" . }}
        - name: catalog
          mountPath: {{ include "falco-risk.catalogDir" . }}
          readOnly: true
        {{- end }}
        {{- if .Values.tls.enabled }}
        - name: tls
          mountPath: {{ include "falco-risk.tlsDir" . }}
          readOnly: true
        {{- end }}
        {{- if .Values.forward.tls.caSecretName }}
        - name: forward-ca
          mountPath: {{ include "falco-risk.forwardCADir" . }}
          readOnly: true
        {{- end }}
        # The root filesystem is read-only; Python and gRPC may still want a scratch directory.
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: config
      configMap:
        name: {{ include "falco-risk.fullname" . }}
    {{- with include "falco-risk.catalogConfigMap" . }}
    - name: catalog
      configMap:
        name: {{ . }}
    {{- end }}
    {{- if .Values.tls.enabled }}
    - name: tls
      secret:
        secretName: {{ .Values.tls.secretName }}
    {{- end }}
    {{- with .Values.forward.tls.caSecretName }}
    - name: forward-ca
      secret:
        secretName: {{ . }}
        items:
          - key: ca.crt
            path: ca.crt
    {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 16Mi
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
