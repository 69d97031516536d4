import type { GatewayConfig } from '../types.js';
import type { Sections } from './sections.js';
import type { FileReader, Validator } from './validator.js';

/** The `health` section: the status page, /metrics and MQTT, each only when configured. */
export function readHealth(v: Validator, s: Pick<Sections, 'device' | 'web' | 'webTls' | 'metrics' | 'mqtt' | 'mqttTls'>, file: FileReader): GatewayConfig['health'] {
  const { device, web, webTls, metrics, mqtt, mqttTls } = s;
  return {
    web: web
      ? {
          host: v.string(web.host, 'health.web.host') ?? '127.0.0.1',
          port: v.int(web.port, 'health.web.port', { min: 1, max: 65535, required: true }) ?? 0,
          ...(webTls ? { tls: { cert: file(webTls.cert, 'health.web.tls.cert', true) ?? '', key: file(webTls.key, 'health.web.tls.key', true) ?? '', ca: file(webTls.ca, 'health.web.tls.ca') } } : {}),
          ...(web.passwordFile !== undefined ? { passwordFile: file(web.passwordFile, 'health.web.passwordFile', true) ?? '' } : {}),
        }
      : undefined,
    metrics: metrics
      ? { host: v.string(metrics.host, 'health.metrics.host') ?? '127.0.0.1', port: v.int(metrics.port, 'health.metrics.port', { min: 1, max: 65535, required: true }) ?? 0 }
      : undefined,
    mqtt: mqtt
      ? {
          url: v.string(mqtt.url, 'health.mqtt.url', { required: true, pattern: /^mqtts?:\/\/[^\s/]+/, hint: 'mqtt://host[:port] or mqtts://host[:port]' }) ?? '',
          topicPrefix: v.string(mqtt.topicPrefix, 'health.mqtt.topicPrefix', { pattern: /^[^#+\s]+$/, hint: 'no spaces, no MQTT wildcards # +' })?.replace(/\/+$/, '') ?? 'pacs-edge',
          intervalSeconds: v.number(mqtt.intervalSeconds, 'health.mqtt.intervalSeconds', { min: 1, max: 3600 }) ?? 30,
          clientId: v.string(mqtt.clientId, 'health.mqtt.clientId') ?? `pacs-edge-${typeof device.id === 'string' ? device.id : ''}`,
          username: v.string(mqtt.username, 'health.mqtt.username'),
          passwordFile: file(mqtt.passwordFile, 'health.mqtt.passwordFile'),
          tls: mqttTls ? Object.fromEntries((['ca', 'cert', 'key'] as const).map((k) => [k, file(mqttTls[k], `health.mqtt.tls.${k}`)])) : undefined,
          protocolVersion: (v.oneOf(mqtt.protocolVersion === undefined ? undefined : String(mqtt.protocolVersion), 'health.mqtt.protocolVersion', ['4', '5']) ?? '5') === '4' ? 4 : 5,
          commands: v.boolean(mqtt.commands, 'health.mqtt.commands') ?? false,
        }
      : undefined,
  };
}
