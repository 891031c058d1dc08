// egress-proxy in a hub VNet: two or more appliances (a VM scale set from a stock Ubuntu image,
// set up by deploy/cloud-init.yaml) behind an internal Standard Load Balancer with HA ports,
// an NSG that admits only the spoke/AKS node networks, a NAT gateway for the appliances' own
// egress, and a route table for spoke subnets that sends 0.0.0.0/0 to the load balancer.
//
//   az deployment group create -g RG -f deploy/azure/main.bicep -p deploy/azure/main.parameters.json
//
// Spokes: peer each spoke VNet with the hub, then either associate `spokeRouteTableId` with
// the node subnets (transparent path) or give the nodes `proxyAddress`:3128 as their HTTP
// proxy (deploy/aks, deploy/nova). See deploy/azure/README.md.

@description('Region of every resource here.')
param location string = resourceGroup().location

@description('Region of the clusters whose names the catalogs match: fills {location} ("*" = any one label).')
param clusterLocation string = location

@description('Address space of the hub VNet.')
param hubVnetCidr string = '10.100.0.0/16'

@description('The appliance subnet, inside hubVnetCidr.')
param applianceSubnetCidr string = '10.100.1.0/24'

@description('Static frontend address of the internal load balancer, in applianceSubnetCidr: the nodes\' proxy address and the spokes\' next hop.')
param proxyAddress string = '10.100.1.100'

@description('Spoke and AKS node networks: the only sources admitted to the proxy ports (and intercepted when enableTransparent).')
param clientCidrs array

@description('Networks allowed to reach the appliances by SSH and the admin port (metrics, status page).')
param adminCidrs array = []

@description('Number of appliances; two or more, so that one can be replaced while the other serves.')
@minValue(2)
param instanceCount int = 2

@description('VM size of an appliance.')
param vmSize string = 'Standard_D2s_v5'

@description('Catalogs the policy uses (policy.catalogs): `java -jar egress-proxy.jar catalogs` lists them.')
param catalogs array = [
  'aks-global'
  'aks-global-ubuntu'
  'aks-global-monitor'
]

@description('true: intercept tcp/443 and tcp/80 from clientCidrs with TPROXY (route-table path, outboundType userDefinedRouting); false: explicit proxy on port 3128 only.')
param enableTransparent bool = true

@description('Where the appliances download egress-proxy.jar (e.g. a storage blob URL with a read SAS).')
@secure()
param jarUrl string

@description('SHA-256 of egress-proxy.jar (sha256sum proxy/target/egress-proxy.jar).')
param jarSha256 string

@description('Administrator of the appliances.')
param adminUsername string = 'azureuser'

@description('SSH public key of adminUsername.')
param adminSshPublicKey string

var name = 'egress-proxy'
// The listener ports of the appliance configuration (deploy/cloud-init.yaml).
var explicitPort = 3128
var tlsSniPort = 8443
var httpHostPort = 8080
var adminPort = 9090

var cloudInit = reduce(
  [
    { key: '@@JAR_URL@@', value: jarUrl }
    { key: '@@JAR_SHA256@@', value: jarSha256 }
    { key: '@@LOCATION@@', value: clusterLocation }
    { key: '@@CATALOGS@@', value: join(catalogs, ', ') }
    { key: '@@TRANSPARENT@@', value: string(enableTransparent) }
    { key: '@@CLIENT_CIDRS@@', value: join(clientCidrs, ',') }
  ],
  loadTextContent('../cloud-init.yaml'),
  (text, p) => replace(string(text), p.key, p.value)
)

resource natIp 'Microsoft.Network/publicIPAddresses@2023-11-01' = {
  name: '${name}-nat-ip'
  location: location
  sku: { name: 'Standard' }
  properties: { publicIPAllocationMethod: 'Static' }
}

// The appliances' own way out (the internal load balancer gives them none).
resource nat 'Microsoft.Network/natGateways@2023-11-01' = {
  name: '${name}-nat'
  location: location
  sku: { name: 'Standard' }
  properties: {
    publicIpAddresses: [ { id: natIp.id } ]
    idleTimeoutInMinutes: 4
  }
}

resource nsg 'Microsoft.Network/networkSecurityGroups@2023-11-01' = {
  name: '${name}-nsg'
  location: location
  properties: {
    securityRules: concat([
      {
        name: 'clients-to-explicit-proxy'
        properties: {
          priority: 100
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefixes: clientCidrs
          sourcePortRange: '*'
          destinationAddressPrefix: applianceSubnetCidr
          destinationPortRange: string(explicitPort)
        }
      }
      {
        // Transparent traffic keeps its Internet destination: the rule cannot name the appliance.
        name: 'clients-transparent-https-http'
        properties: {
          priority: 110
          direction: 'Inbound'
          access: enableTransparent ? 'Allow' : 'Deny'
          protocol: 'Tcp'
          sourceAddressPrefixes: clientCidrs
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRanges: [ '443', '80' ]
        }
      }
      {
        name: 'load-balancer-probe'
        properties: {
          priority: 120
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: 'AzureLoadBalancer'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: string(adminPort)
        }
      }
    ], empty(adminCidrs) ? [] : [
      {
        name: 'admins-ssh-and-admin-port'
        properties: {
          priority: 130
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefixes: adminCidrs
          sourcePortRange: '*'
          destinationAddressPrefix: applianceSubnetCidr
          destinationPortRanges: [ '22', string(adminPort) ]
        }
      }
    ], [
      {
        // Override the default "VNet may reach anything": nothing else reaches the appliances.
        name: 'deny-other-inbound'
        properties: {
          priority: 4000
          direction: 'Inbound'
          access: 'Deny'
          protocol: '*'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '*'
        }
      }
    ])
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2023-11-01' = {
  name: '${name}-hub'
  location: location
  properties: {
    addressSpace: { addressPrefixes: [ hubVnetCidr ] }
    subnets: [
      {
        name: 'appliances'
        properties: {
          addressPrefix: applianceSubnetCidr
          networkSecurityGroup: { id: nsg.id }
          natGateway: { id: nat.id }
        }
      }
    ]
  }
}

var subnetId = vnet.properties.subnets[0].id

resource lb 'Microsoft.Network/loadBalancers@2023-11-01' = {
  name: '${name}-ilb'
  location: location
  sku: { name: 'Standard' }
  properties: {
    frontendIPConfigurations: [
      {
        name: 'proxy'
        properties: {
          privateIPAllocationMethod: 'Static'
          privateIPAddress: proxyAddress
          subnet: { id: subnetId }
        }
      }
    ]
    backendAddressPools: [ { name: 'appliances' } ]
    probes: [
      {
        // 503 while an appliance drains (SIGTERM) or has no policy: it gets no new flows.
        name: 'readyz'
        properties: {
          protocol: 'Http'
          port: adminPort
          requestPath: '/readyz'
          intervalInSeconds: 5
          numberOfProbes: 2
        }
      }
    ]
    loadBalancingRules: [
      {
        // HA ports: every port and protocol, the packets' destination unchanged, so that the
        // explicit port and the transparent (TPROXY) traffic both reach an appliance.
        name: 'ha-ports'
        properties: {
          protocol: 'All'
          frontendPort: 0
          backendPort: 0
          frontendIPConfiguration: { id: resourceId('Microsoft.Network/loadBalancers/frontendIPConfigurations', '${name}-ilb', 'proxy') }
          backendAddressPool: { id: resourceId('Microsoft.Network/loadBalancers/backendAddressPools', '${name}-ilb', 'appliances') }
          probe: { id: resourceId('Microsoft.Network/loadBalancers/probes', '${name}-ilb', 'readyz') }
          enableFloatingIP: false
          idleTimeoutInMinutes: 30
          loadDistribution: 'Default'
        }
      }
    ]
  }
}

resource vmss 'Microsoft.Compute/virtualMachineScaleSets@2024-03-01' = {
  name: '${name}-vmss'
  location: location
  sku: {
    name: vmSize
    tier: 'Standard'
    capacity: instanceCount
  }
  zones: [ '1', '2', '3' ]
  properties: {
    orchestrationMode: 'Uniform'
    overprovision: false
    upgradePolicy: { mode: 'Manual' }
    virtualMachineProfile: {
      storageProfile: {
        imageReference: {
          publisher: 'Canonical'
          offer: '0001-com-ubuntu-server-jammy'
          sku: '22_04-lts-gen2'
          version: 'latest'
        }
        osDisk: {
          createOption: 'FromImage'
          managedDisk: { storageAccountType: 'Premium_LRS' }
        }
      }
      osProfile: {
        computerNamePrefix: 'egress'
        adminUsername: adminUsername
        customData: base64(cloudInit)
        linuxConfiguration: {
          disablePasswordAuthentication: true
          ssh: {
            publicKeys: [
              {
                path: '/home/${adminUsername}/.ssh/authorized_keys'
                keyData: adminSshPublicKey
              }
            ]
          }
        }
      }
      networkProfile: {
        healthProbe: { id: resourceId('Microsoft.Network/loadBalancers/probes', '${name}-ilb', 'readyz') }
        networkInterfaceConfigurations: [
          {
            name: 'nic'
            properties: {
              primary: true
              // Azure hands a VM packets addressed to other hosts (the transparent path) only
              // with IP forwarding on; the appliance itself forwards nothing (nftables).
              enableIPForwarding: true
              ipConfigurations: [
                {
                  name: 'ipconfig'
                  properties: {
                    subnet: { id: subnetId }
                    loadBalancerBackendAddressPools: [ { id: lb.properties.backendAddressPools[0].id } ]
                  }
                }
              ]
            }
          }
        ]
      }
    }
  }
}

// For spoke (and AKS node) subnets: everything to the appliances. Associate it with those
// subnets (in their own VNets, peered with the hub) before an AKS cluster with
// outboundType userDefinedRouting is created.
resource spokeRoutes 'Microsoft.Network/routeTables@2023-11-01' = {
  name: '${name}-spoke-routes'
  location: location
  properties: {
    disableBgpRoutePropagation: true
    routes: [
      {
        name: 'default-via-egress-proxy'
        properties: {
          addressPrefix: '0.0.0.0/0'
          nextHopType: 'VirtualAppliance'
          nextHopIpAddress: proxyAddress
        }
      }
    ]
  }
}

output proxyAddress string = proxyAddress
output explicitProxyUrl string = 'http://${proxyAddress}:${explicitPort}/'
output spokeRouteTableId string = spokeRoutes.id
output applianceEgressIp string = natIp.properties.ipAddress
output transparentPorts object = { https: tlsSniPort, http: httpHostPort }
