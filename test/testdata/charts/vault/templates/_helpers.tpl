{{/* As vault-helm: "-" follows global.enabled; an external Vault disables the server. */}}
{{- define "vault.serverEnabled" -}}
{{- if and (eq (toString .Values.server.enabled) "-") .Values.global.enabled (not .Values.global.externalVaultAddr) -}}
true
{{- else if and (ne (toString .Values.server.enabled) "-") .Values.server.enabled -}}
true
{{- end -}}
{{- end -}}
{{- define "vault.injectorEnabled" -}}
{{- if eq (toString .Values.injector.enabled) "-" -}}
{{- if .Values.global.enabled }}true{{ end -}}
{{- else if .Values.injector.enabled -}}
true
{{- end -}}
{{- end -}}
