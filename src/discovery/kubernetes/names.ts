/**
 * How a mesh service name maps to a Kubernetes Service: `users` is the Service `users` in the registry's
 * namespace, `users.payments` the one in `payments`, and the cluster DNS forms `users.payments.svc` and
 * `users.payments.svc.cluster.local` (any cluster domain) mean the same. Both parts must be DNS-1123 labels
 * (apimachinery pkg/util/validation IsDNS1123Label: what Service and namespace names are), so neither can
 * escape the URL path or the label selector they are put in.
 */
import { InvalidServiceNameError } from '../../errors.js';
import { serviceNameProblem } from '../../util/service-name.js';

/** A Service, by name and namespace. */
export interface ServiceRef {
  readonly name: string;
  readonly namespace: string;
}

/** apimachinery's dns1123LabelFmt, with its 63-character limit. */
const DNS1123_LABEL = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/;

/** Why `value` is not a DNS-1123 label, or undefined when it is one. */
export function dns1123LabelProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'it must be a string';
  if (value === '') return 'it is empty';
  if (value.length > 63) return 'it is longer than 63 characters';
  if (!DNS1123_LABEL.test(value)) return "only lowercase letters, digits and '-' are allowed, starting and ending with a letter or digit";
  return undefined;
}

/** The Service that `service` names; throws an {@link InvalidServiceNameError} for anything else. */
export function serviceRef(service: string, defaultNamespace: string): ServiceRef {
  const problem = serviceNameProblem(service);
  if (problem) throw new InvalidServiceNameError(String(service), problem);
  const labels = service.split('.');
  if (labels.length > 2 && labels[2] !== 'svc') {
    throw new InvalidServiceNameError(service, "a Kubernetes service is named 'name', 'name.namespace' or 'name.namespace.svc[.cluster domain]'");
  }
  const [name, namespace = defaultNamespace] = labels as [string, string?];
  const nameProblem = dns1123LabelProblem(name);
  if (nameProblem) throw new InvalidServiceNameError(service, `'${name}' is not a Kubernetes Service name: ${nameProblem}`);
  const nsProblem = dns1123LabelProblem(namespace);
  if (nsProblem) throw new InvalidServiceNameError(service, `'${namespace}' is not a Kubernetes namespace name: ${nsProblem}`);
  return { name, namespace };
}
